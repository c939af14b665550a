//! Users and groups, and who may edit which node.

use serde::{Deserialize, Serialize};

use crate::id::ObjectId;
use crate::node::Node;

/// The group that may edit every node.
pub const EDIT_ANY_GROUP: &str = "node:edit:any";

/// A named group of users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserGroup {
    /// Identifier.
    pub id: ObjectId,
    /// Unique name (e.g. `kernelci`, `runtime:lava-collabora:node-editor`).
    pub name: String,
}

/// A stored user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Identifier (the JWT `sub`).
    pub id: ObjectId,
    /// Unique e-mail address.
    pub email: String,
    /// bcrypt (`$2b$...`) or argon2id (`$argon2id$...`) hash.
    pub hashed_password: String,
    /// Inactive users cannot authenticate.
    pub is_active: bool,
    /// Admin.
    pub is_superuser: bool,
    /// Accepted an invite (required by `/whoami`).
    pub is_verified: bool,
    /// Unique username (becomes node `owner`).
    pub username: String,
    /// Groups, embedded by value.
    pub groups: Vec<UserGroup>,
}

/// The public view of a user (`UserRead`), keys in upstream order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRead {
    /// Identifier.
    pub id: ObjectId,
    /// E-mail.
    pub email: String,
    /// Active.
    pub is_active: bool,
    /// Admin.
    pub is_superuser: bool,
    /// Verified.
    pub is_verified: bool,
    /// Username.
    pub username: String,
    /// Groups.
    pub groups: Vec<UserGroup>,
}

impl User {
    /// The public view.
    pub fn read(&self) -> UserRead {
        UserRead {
            id: self.id,
            email: self.email.clone(),
            is_active: self.is_active,
            is_superuser: self.is_superuser,
            is_verified: self.is_verified,
            username: self.username.clone(),
            groups: self.groups.clone(),
        }
    }

    /// Whether the user belongs to the named group.
    pub fn in_group(&self, name: &str) -> bool {
        self.groups.iter().any(|g| g.name == name)
    }

    /// Upstream's edit rule: superuser, owner, `node:edit:any`, a group listed in the node's
    /// `user_groups`, or `runtime:<R>:node-editor|node-admin` for the node's `data.runtime`.
    pub fn can_edit_node(&self, node: &Node) -> bool {
        if self.is_superuser || node.owner.as_deref() == Some(self.username.as_str()) {
            return true;
        }
        if self.in_group(EDIT_ANY_GROUP) || node.user_groups.iter().any(|g| self.in_group(g)) {
            return true;
        }
        match node.runtime() {
            Some(rt) => {
                self.in_group(&format!("runtime:{rt}:node-editor"))
                    || self.in_group(&format!("runtime:{rt}:node-admin"))
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeInput;
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            id: ObjectId::generate(),
            email: format!("{name}@example.org"),
            hashed_password: String::new(),
            is_active: true,
            is_superuser: false,
            is_verified: true,
            username: name.into(),
            groups: groups
                .iter()
                .map(|g| UserGroup {
                    id: ObjectId::generate(),
                    name: g.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn edit_rules_match_upstream() {
        let now = crate::time::now();
        let body = json!({"kind": "job", "name": "j", "path": ["j"], "user_groups": ["team-a"],
                          "data": {"runtime": "lava-x"}});
        let node = NodeInput::from_json(&body, now)
            .unwrap()
            .into_new_node("owner", now)
            .unwrap();
        assert!(user("owner", &[]).can_edit_node(&node));
        assert!(user("bob", &["team-a"]).can_edit_node(&node));
        assert!(user("bob", &["runtime:lava-x:node-editor"]).can_edit_node(&node));
        assert!(user("bob", &["runtime:lava-x:node-admin"]).can_edit_node(&node));
        assert!(user("bob", &[EDIT_ANY_GROUP]).can_edit_node(&node));
        assert!(!user("bob", &["runtime:lava-y:node-editor"]).can_edit_node(&node));
        assert!(!user("bob", &[]).can_edit_node(&node));
        let mut admin = user("root", &[]);
        admin.is_superuser = true;
        assert!(admin.can_edit_node(&node));
        let keys: Vec<String> = serde_json::to_value(admin.read())
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "email",
                "is_active",
                "is_superuser",
                "is_verified",
                "username",
                "groups"
            ]
        );
    }
}
