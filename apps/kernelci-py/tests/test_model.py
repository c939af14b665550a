"""kernelci.model: node bodies checked as the API checks them, stored nodes."""

import json
import pickle

import pytest

from kernelci import model

CHECKOUT = {
    "kind": "checkout",
    "name": "checkout",
    "path": ["checkout"],
    "data": {
        "kernel_revision": {
            "tree": "mainline",
            "url": "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
            "branch": "master",
            "commit": "0123456789abcdef0123456789abcdef01234567",
        }
    },
}


def test_a_good_body_has_no_422_errors_and_creates_a_node():
    assert model.validate_node(CHECKOUT) == []
    node = model.Node.create(CHECKOUT, owner="lab")
    assert node.kind == "checkout"
    assert node.name == "checkout"
    assert node.state == "running"
    assert node.owner == "lab"
    assert node.result is None
    assert len(node.id) == 24
    assert node.data["kernel_revision"]["branch"] == "master"
    assert node.can_transition_to("available")
    assert not node.can_transition_to("bogus")
    stored = node.to_dict()
    assert len(stored) == 23
    assert json.loads(node.to_json()) == stored
    with pytest.raises(AttributeError):
        node.nope


def test_every_field_error_is_reported_in_fastapi_s_shape():
    errors = model.validate_node({"name": 3, "state": "bogus", "path": ["a", 1]})
    assert {"type": "string_type", "loc": ["body", "name"], "msg": "Input should be a valid string", "input": 3} in errors
    locs = [e["loc"] for e in errors]
    assert ["body", "path", 1] in locs
    assert ["body", "state"] in locs
    assert model.validate_node([1]) [0]["type"] == "model_attributes_type"


def test_create_raises_422_and_400_like_the_api():
    with pytest.raises(model.InvalidNode) as raised:
        model.Node.create({"name": "x"}, owner="lab")
    assert raised.value.status == 422
    assert raised.value.errors[0]["loc"] == ["body", "path"]
    with pytest.raises(model.InvalidNode) as raised:
        model.Node.create({"kind": "bogus", "name": "x", "path": ["x"]}, owner="lab")
    assert raised.value.status == 400
    assert str(raised.value) == "Unsupported node kind: bogus"
    assert raised.value.errors == []
    bad_data = dict(CHECKOUT, data={"kernel_revision": {"tree": 1}})
    with pytest.raises(model.InvalidNode) as raised:
        model.Node.create(bad_data, owner="lab")
    assert raised.value.status == 400
    assert "checkout node data" in str(raised.value)


def test_a_stored_node_round_trips():
    node = model.Node.create(CHECKOUT, owner="lab")
    again = model.Node.from_json(node.to_json())
    assert again == node
    assert model.Node.from_json(node.to_dict()) == node
    assert pickle.loads(pickle.dumps(node)) == node
    assert "checkout" in repr(node)


def test_bad_stored_nodes_raise():
    with pytest.raises(model.InvalidNode, match="not JSON"):
        model.Node.from_json(b"{")
    with pytest.raises(model.InvalidNode, match="not a stored node"):
        model.Node.from_json({"name": "x"})
    with pytest.raises(TypeError):
        model.Node.from_json(object())
