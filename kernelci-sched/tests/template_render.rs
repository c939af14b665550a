//! Template environment: lookups, context variables, globals, quoting, errors.

use std::process::Command;

use kernelci_sched::template::{
    ArchNames, EMBEDDED_TEMPLATES, JobContext, TemplateError, Templates, shell_quote,
};
use serde_json::{Value, json};

fn kbuild_ctx() -> JobContext {
    JobContext::new("kbuild-gcc-12-x86", "shell")
        .node(json!({"id": "n1", "artifacts": {"tarball": "https://storage.example/linux.tar.gz"}}))
        .platform(json!({"name": "kubernetes", "arch": "x86_64"}))
        .params(json!({"arch": "x86_64", "compiler": "gcc-12", "defconfig": "tinyconfig"}))
}

/// Runs `script` with bash and returns its stdout.
fn bash(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn bash_syntax_ok(script: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("s.sh");
    std::fs::write(&p, script).expect("write");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&p)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "bash -n: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn embedded_templates_are_listed_and_parse() {
    let t = Templates::new();
    let names: Vec<&str> = EMBEDDED_TEMPLATES.iter().map(|(n, _)| *n).collect();
    assert!(names.contains(&"shell/kbuild.jinja2"));
    assert!(names.contains(&"shell/baseline.jinja2"));
    for n in names {
        assert_eq!(t.resolve("", n).expect("resolves"), n);
    }
}

#[test]
fn lookup_prefers_lab_type_then_plain_name() {
    let t = Templates::new();
    assert_eq!(
        t.resolve("shell", "kbuild.jinja2").expect("found"),
        "shell/kbuild.jinja2"
    );
    // A full name also works: `shell/shell/...` is tried first and missing.
    assert_eq!(
        t.resolve("shell", "shell/baseline.jinja2").expect("found"),
        "shell/baseline.jinja2"
    );
    match t.resolve("lava", "kbuild.jinja2") {
        Err(TemplateError::NotFound { name, tried }) => {
            assert_eq!(name, "kbuild.jinja2");
            assert_eq!(tried, vec!["lava/kbuild.jinja2", "kbuild.jinja2"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = t.render("shell", "nope.jinja2", &json!({})).unwrap_err();
    assert!(
        err.to_string().contains("template not found: nope.jinja2"),
        "{err}"
    );
}

#[test]
fn operator_dirs_are_searched_first_and_support_extends() {
    let d1 = tempfile::tempdir().expect("tempdir");
    let d2 = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(d1.path().join("shell")).expect("mkdir");
    std::fs::create_dir_all(d2.path().join("base")).expect("mkdir");
    std::fs::write(
        d1.path().join("shell/kbuild.jinja2"),
        "{% extends 'base/shell.jinja2' %}{% block body %}custom {{ name }}{% endblock %}",
    )
    .expect("write");
    std::fs::write(
        d2.path().join("base/shell.jinja2"),
        "#!/bin/sh\n{% block body %}{% endblock %}",
    )
    .expect("write");
    std::fs::write(d2.path().join("generic.jinja2"), "generic {{ runtime }}").expect("write");
    std::fs::write(d2.path().join("shell").with_extension("x"), "").expect("write");
    let t = Templates::with_dirs([d1.path(), d2.path()]);
    assert_eq!(t.dirs().len(), 2);
    let ctx = JobContext::new("job1", "shell").build();
    assert_eq!(
        t.render("shell", "kbuild.jinja2", &ctx).expect("render"),
        "#!/bin/sh\ncustom job1"
    );
    // Not under shell/: the plain name.
    assert_eq!(
        t.render("shell", "generic.jinja2", &ctx).expect("render"),
        "generic shell"
    );
    // The embedded baseline is still there.
    assert_eq!(
        t.resolve("shell", "baseline.jinja2").expect("found"),
        "shell/baseline.jinja2"
    );
    // No escaping out of the directories.
    assert!(matches!(
        t.resolve("shell", "../etc/passwd"),
        Err(TemplateError::NotFound { .. })
    ));
    assert!(matches!(
        t.resolve("", "/etc/passwd"),
        Err(TemplateError::NotFound { .. })
    ));
}

#[test]
fn render_error_names_template_and_line() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(d.path().join("shell")).expect("mkdir");
    std::fs::write(d.path().join("shell/bad.jinja2"), "line one\n{% if %}\n").expect("write");
    std::fs::write(
        d.path().join("shell/inc.jinja2"),
        "a\nb\n{% include 'shell/bad.jinja2' %}",
    )
    .expect("write");
    let t = Templates::with_dirs([d.path()]);
    match t.render("shell", "bad.jinja2", &json!({})) {
        Err(TemplateError::Render { template, line, .. }) => {
            assert_eq!(template, "shell/bad.jinja2");
            assert_eq!(line, Some(2));
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = t.render("shell", "inc.jinja2", &json!({})).unwrap_err();
    assert!(err.to_string().contains("shell/bad.jinja2 line 2"), "{err}");
    let err = t.render_str("{{ 1 + }}", &json!({})).unwrap_err();
    assert!(matches!(err, TemplateError::Render { ref template, .. } if template == "<string>"));
}

#[test]
fn kci_raise_is_a_typed_error() {
    let t = Templates::new();
    match t.render_str("ok\n{{ kci_raise('bad params: ' ~ x) }}", &json!({"x": 3})) {
        Err(TemplateError::Raised {
            template,
            line,
            message,
        }) => {
            assert_eq!(template, "<string>");
            assert_eq!(line, Some(2));
            assert_eq!(message, "bad params: 3");
        }
        other => panic!("unexpected {other:?}"),
    }
    // kbuild raises without a tarball.
    let ctx = JobContext::new("k", "shell")
        .params(json!({"arch": "x86_64"}))
        .build();
    let err = t.render("shell", "kbuild.jinja2", &ctx).unwrap_err();
    assert!(
        matches!(&err, TemplateError::Raised { template, message, .. }
            if template == "shell/kbuild.jinja2" && message.contains("tarball")),
        "{err:?}"
    );
    // ... and without an arch.
    let ctx = JobContext::new("k", "shell")
        .node(json!({"artifacts": {"tarball": "file:///x.tgz"}}))
        .build();
    let err = t.render("shell", "kbuild.jinja2", &ctx).unwrap_err();
    assert!(err.to_string().contains("arch"), "{err}");
    // baseline raises without a kernel.
    let err = t
        .render(
            "shell",
            "baseline.jinja2",
            &JobContext::new("b", "shell").build(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("node.artifacts.kernel"), "{err}");
}

#[test]
fn globals_filters_pycompat_and_lenient_undefined() {
    let t = Templates::new();
    let ctx = json!({"d": {"b": 2, "a": [1, "x"]}, "s": "tinyconfig+kvm_guest.config"});
    assert_eq!(
        t.render_str("{{ kci_yaml_dump(d) }}", &ctx)
            .expect("render"),
        "a:\n- 1\n- x\nb: 2\n"
    );
    assert_eq!(
        t.render_str(
            "{{ s.split('+')|join(',') }}|{{ s.startswith('tiny') }}",
            &ctx
        )
        .expect("render"),
        "tinyconfig,kvm_guest.config|True"
    );
    assert_eq!(
        t.render_str("{% for k, v in d.items() %}{{ k }};{% endfor %}", &ctx)
            .expect("render"),
        "a;b;"
    );
    assert_eq!(
        t.render_str(
            "[{{ missing }}]{% for x in missing %}x{% endfor %}{% if not missing %}!{% endif %}",
            &ctx
        )
        .expect("render"),
        "[]!"
    );
    // No HTML escaping, even for .html-like names.
    assert_eq!(
        t.render_str("{{ '<a&b>' }}", &ctx).expect("render"),
        "<a&b>"
    );
    assert_eq!(
        t.render_str("{{ none|shell_quote }} {{ missing|shell_quote }} {{ [1, 'a b']|shell_quote }} {{ 7|shell_quote }}", &ctx)
            .expect("render"),
        "'' '' '1' 'a b' '7'"
    );
}

#[test]
fn shell_quote_survives_hostile_values() {
    let hostile = [
        "'; rm -rf / #",
        "$(touch /tmp/pwned)",
        "`id`",
        "a\"b\\c",
        "line1\nline2",
        "'''",
        "",
        "ünïcødé ${HOME} $HOME",
        "-n",
    ];
    assert_eq!(shell_quote("it's"), "'it'\\''s'");
    let t = Templates::new();
    for h in hostile {
        let script = t
            .render_str(
                "x={{ v|shell_quote }}; printf '%s' \"$x\"",
                &json!({ "v": h }),
            )
            .expect("render");
        assert_eq!(bash(&script), h, "script: {script}");
        // A list gives one word per item.
        let script = t
            .render_str(
                "set -- {{ [v, v]|shell_quote }}; printf '%s|' \"$#\" \"$@\"",
                &json!({ "v": h }),
            )
            .expect("render");
        assert_eq!(bash(&script), format!("2|{h}|{h}|"));
    }
    // NUL bytes cannot be passed to a shell: an error rather than a truncated value.
    assert!(
        t.render_str("{{ v|shell_quote }}", &json!({"v": "a\u{0}b"}))
            .is_err()
    );
}

/// Outside comments, the payload `; touch /tmp/kci-pwned` only ever appears right after an
/// escaped quote: `'\''` (shell_quote) or `\u0027` (tojson, then shell_quote).
fn assert_payload_quoted(script: &str) {
    let mut seen = 0;
    for line in script.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for (i, _) in line.match_indices("; touch /tmp/kci-pwned") {
            seen += 1;
            let before = &line[..i];
            assert!(
                before.ends_with("'\\''") || before.ends_with("\\u0027"),
                "unquoted payload in: {line}"
            );
        }
    }
    assert!(seen > 0);
}

#[test]
fn hostile_values_in_kbuild_stay_quoted() {
    let t = Templates::new();
    let evil = "'; touch /tmp/kci-pwned; echo '";
    let ctx = JobContext::new("kbuild $(id)\n'x", "shell")
        .node(json!({"artifacts": {"tarball": format!("https://x/{evil}.tgz")}}))
        .params(json!({
            "arch": evil, "compiler": evil, "cross_compile": evil, "defconfig": [evil, "b"],
            "make_target": evil, "jobs": evil, "fragments": ["f", "CONFIG_X=\"'$(id)'\""]
        }))
        .fragment_configs(json!({"f": {"configs": [evil, "CONFIG_Y=y"]}}))
        .build();
    let script = t.render("shell", "kbuild.jinja2", &ctx).expect("render");
    bash_syntax_ok(&script);
    assert_payload_quoted(&script);
    let ctx = JobContext::new("boot", "shell")
        .node(json!({"artifacts": {"kernel": evil}}))
        .params(json!({
            "ramdisk": evil, "qemu_bin": evil, "qemu_append": evil, "qemu_memory": evil,
            "boot_timeout": evil, "qemu_extra_args": evil, "qemu_machine": [evil]
        }))
        .build();
    let script = t.render("shell", "baseline.jinja2", &ctx).expect("render");
    bash_syntax_ok(&script);
    assert_payload_quoted(&script);
}

#[test]
fn job_context_has_upstream_variables() {
    let ctx = JobContext::new("baseline-x86", "lava")
        .node(json!({"id": "abc", "artifacts": {"kernel": "http://k"}}))
        .runtime_image("kernelci/staging-gcc-12:x86-kselftest")
        .platform(json!({
            "name": "qemu-x86", "base_name": "qemu", "arch": "x86_64",
            "params": {"arch": "x86_64", "boot_timeout": 30, "p": "platform"}
        }))
        .params(json!({"p": "job", "q": 1}))
        .params(json!({"q": 2}))
        .fragment_configs(json!([{"name": "f", "configs": ["CONFIG_A=y"]}]))
        .api_config(json!({"name": "local", "url": "http://api"}))
        .storage_config(json!({"name": "st"}))
        .instance(Some("staging".into()), Some("https://cb".into()))
        .set("extra", json!(true))
        .build();
    assert_eq!(ctx["name"], "baseline-x86");
    assert_eq!(ctx["runtime"], "lava");
    assert_eq!(
        ctx["runtime_image"],
        "kernelci/staging-gcc-12:x86-kselftest"
    );
    assert_eq!(ctx["node"]["id"], "abc");
    assert_eq!(ctx["device_type"], "qemu");
    assert_eq!(ctx["platform_config"]["name"], "qemu-x86");
    assert_eq!(ctx["boot_timeout"], 30);
    assert_eq!(ctx["p"], "job", "job params win over platform params");
    assert_eq!(ctx["q"], 2);
    assert_eq!(ctx["brarch"], "x86");
    assert_eq!(ctx["crosarch"], "x86_64");
    assert_eq!(ctx["debarch"], "amd64");
    assert_eq!(ctx["karch"], "x86");
    assert_eq!(ctx["fragment_configs"][0]["name"], "f");
    assert_eq!(ctx["api_config"]["url"], "http://api");
    assert_eq!(ctx["storage_config"]["name"], "st");
    assert_eq!(ctx["instanceid"], "staging");
    assert_eq!(ctx["instance_callback"], "https://cb");
    assert_eq!(ctx["extra"], true);

    // Defaults: empty objects, nulls, device_type from the name, arch from the platform.
    let ctx = JobContext::new("j", "shell")
        .platform(json!({"name": "rpi", "arch": "arm"}))
        .build();
    assert_eq!(ctx["api_config"], json!({}));
    assert_eq!(ctx["instanceid"], Value::Null);
    assert_eq!(ctx["runtime_image"], Value::Null);
    assert_eq!(ctx["device_type"], "rpi");
    assert_eq!(ctx["brarch"], "armel");
    assert_eq!(ctx["debarch"], "armhf");
    let ctx = JobContext::new("j", "shell").build();
    assert_eq!(ctx["device_type"], Value::Null);
    assert!(ctx.get("karch").is_none());

    // The variables reach a template.
    let t = Templates::new();
    let ctx = JobContext::new("j", "shell")
        .params(json!({"arch": "riscv64"}))
        .build();
    assert_eq!(
        t.render_str(
            "{{ name }} {{ runtime }} {{ brarch }} {{ debarch }} {{ karch }}",
            &ctx
        )
        .expect("render"),
        "j shell riscv riscv64 riscv64"
    );
}

#[test]
fn arch_names_tables() {
    let a = ArchNames::from_arch("armel");
    assert_eq!(
        (
            a.brarch.as_str(),
            a.crosarch.as_str(),
            a.debarch.as_str(),
            a.karch.as_str()
        ),
        ("armel", "armel", "armel", "arm")
    );
    let a = ArchNames::from_arch("arm64");
    assert_eq!(a.karch, "arm64");
    assert_eq!(a.debarch, "arm64");
    assert_eq!(ArchNames::from_arch("riscv").debarch, "riscv64");
}

#[test]
fn kbuild_renders_per_arch_compiler_defconfig_and_fragments() {
    let t = Templates::new();
    let s = t
        .render("shell", "kbuild.jinja2", &kbuild_ctx().build())
        .expect("render");
    bash_syntax_ok(&s);
    assert!(s.starts_with("#!/bin/bash\n"), "{s}");
    assert!(s.contains("set -eE -o pipefail"));
    assert!(
        s.contains("MAKE_ARGS=(ARCH='x86_64' CC='gcc-12' HOSTCC='gcc-12')"),
        "{s}"
    );
    assert!(s.contains("make \"${MAKE_ARGS[@]}\" 'tinyconfig'\n"));
    assert!(s.contains("-j\"$JOBS\" 'bzImage'"));
    assert!(s.contains("IMAGE_PATH='arch/x86/boot/bzImage'"));
    assert!(s.contains("JOBS=\"$(nproc)\""));
    assert!(s.contains("TARBALL='https://storage.example/linux.tar.gz'"));
    assert!(s.contains("# no fragments"));

    // arm64, clang, cross compile, defconfig list, both fragment forms, jobs, make_target.
    let ctx = JobContext::new("kbuild-clang-17-arm64", "shell")
        .node(json!({"artifacts": {"tarball": "file:///t/linux.tgz"}, "debug": {"tarball": "file:///dbg.tgz"}}))
        .params(json!({
            "arch": "arm64", "compiler": "clang-17", "cross_compile": "aarch64-linux-gnu-",
            "cross_compile_compat": "arm-linux-gnueabihf-",
            "defconfig": ["defconfig", "kselftest.config"], "jobs": 3,
            "fragments": ["lab-setup", "CONFIG_FOO=y", "kselftest"]
        }))
        .fragment_configs(json!({
            "kselftest": {"configs": ["CONFIG_KSELFTEST=y"]},
            "lab-setup": {"configs": ["CONFIG_LAB=y", "# CONFIG_X is not set"]},
            "unused": {"configs": ["CONFIG_UNUSED=y"]}
        }))
        .build();
    let s = t.render("shell", "kbuild.jinja2", &ctx).expect("render");
    bash_syntax_ok(&s);
    assert!(
        s.contains("TARBALL='file:///dbg.tgz'"),
        "node.debug.tarball wins"
    );
    assert!(
        s.contains("MAKE_ARGS=(ARCH='arm64' CC='clang-17' HOSTCC='clang-17' LLVM=1)"),
        "{s}"
    );
    assert!(s.contains("MAKE_ARGS+=(CROSS_COMPILE='aarch64-linux-gnu-')"));
    assert!(s.contains("MAKE_ARGS+=(CROSS_COMPILE_COMPAT='arm-linux-gnueabihf-')"));
    assert!(s.contains(
        "make \"${MAKE_ARGS[@]}\" 'defconfig'\nmake \"${MAKE_ARGS[@]}\" 'kselftest.config'\n"
    ));
    assert!(s.contains("JOBS='3'"));
    assert!(s.contains("-j\"$JOBS\" 'Image'"));
    assert!(s.contains("IMAGE_PATH='arch/arm64/boot/Image'"));
    assert!(s.contains("# fragment 0: lab-setup\nprintf '%s\\n' 'CONFIG_LAB=y' '# CONFIG_X is not set' > \"$ARTIFACTS/fragments/0.config\""), "{s}");
    assert!(s.contains("# fragment 1: CONFIG_FOO=y\nprintf '%s\\n' 'CONFIG_FOO=y' > \"$ARTIFACTS/fragments/1.config\""));
    assert!(s.contains("# fragment 2: kselftest\n"));
    assert!(!s.contains("UNUSED"));
    assert!(
        s.contains("'\"defconfig+kselftest.config+lab-setup+CONFIG_FOO=y+kselftest\"'"),
        "{s}"
    );
    assert!(
        s.contains("'[\"lab-setup\", \"CONFIG_FOO=y\", \"kselftest\"]'"),
        "{s}"
    );

    // gcc cross compile: CC gets the prefix; list-form fragments; a+b defconfig.
    let ctx = JobContext::new("k", "shell")
        .node(json!({"artifacts": {"tarball": "/abs/linux.tgz"}}))
        .params(json!({
            "arch": "arm", "cross_compile": "arm-linux-gnueabihf-", "defconfig": "multi_v7_defconfig+kvm_guest.config",
            "make_target": "uImage"
        }))
        .fragment_configs(json!([{"name": "console", "configs": ["CONFIG_A=y"]}]))
        .build();
    let s = t.render("shell", "kbuild.jinja2", &ctx).expect("render");
    bash_syntax_ok(&s);
    assert!(
        s.contains("CC='arm-linux-gnueabihf-gcc' HOSTCC='gcc'"),
        "{s}"
    );
    assert!(s.contains("'multi_v7_defconfig'\nmake \"${MAKE_ARGS[@]}\" 'kvm_guest.config'"));
    assert!(s.contains("IMAGE_PATH='arch/arm/boot/uImage'"));
    assert!(s.contains("'\"multi_v7_defconfig+kvm_guest.config+console\"'"));

    // Unknown fragment name: a render error, not a broken script.
    let ctx = kbuild_ctx()
        .params(json!({"fragments": ["nope"]}))
        .fragment_configs(json!({"x": {"configs": []}}))
        .build();
    let err = t.render("shell", "kbuild.jinja2", &ctx).unwrap_err();
    assert!(err.to_string().contains("fragment nope"), "{err}");
}

#[test]
fn baseline_renders_qemu_command() {
    let t = Templates::new();
    let ctx = JobContext::new("baseline-x86", "shell")
        .node(json!({"artifacts": {"kernel": "http://s/bzImage"}}))
        .params(json!({"arch": "x86_64", "ramdisk": "/srv/initramfs.cpio.gz"}))
        .build();
    let s = t.render("shell", "baseline.jinja2", &ctx).expect("render");
    bash_syntax_ok(&s);
    assert!(s.contains("QEMU_BIN='qemu-system-x86_64'"), "{s}");
    assert!(s.contains("BOOT_TIMEOUT='60'"));
    assert!(s.contains("-m '256' -nographic -no-reboot"));
    assert!(s.contains("-append 'console=ttyS0,115200 rdinit=/init'"));
    assert!(s.contains("kci_fetch '/srv/initramfs.cpio.gz' \"$DOWNLOADS/ramdisk\""));
    assert!(s.contains("-initrd \"$DOWNLOADS/ramdisk\""));

    let ctx = JobContext::new("baseline-arm64", "shell")
        .node(json!({"artifacts": {"kernel": "http://s/Image"}}))
        .platform(json!({"name": "qemu-arm64", "arch": "arm64"}))
        .params(
            json!({"qemu_extra_args": "-smp 2  -accel tcg", "boot_timeout": 5, "qemu_memory": 512}),
        )
        .build();
    let s = t.render("shell", "baseline.jinja2", &ctx).expect("render");
    bash_syntax_ok(&s);
    assert!(s.contains("QEMU_BIN='qemu-system-aarch64'"));
    assert!(
        s.contains("'-M' 'virt' '-cpu' 'cortex-a57' -m '512'"),
        "{s}"
    );
    assert!(s.contains("-append 'console=ttyAMA0,115200 rdinit=/init'"));
    assert!(s.contains("'-smp' '2' '-accel' 'tcg'"));
    assert!(!s.contains("-initrd"));
}

#[test]
fn templates_are_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Templates>();
    assert_send_sync::<TemplateError>();
}

fn lava_ctx() -> JobContext {
    JobContext::new("baseline-qemu", "lava")
        .node(json!({
            "id": "65a1b2c3d4e5f60718293a4b", "name": "baseline-qemu",
            "artifacts": {"kernel": "http://127.0.0.1:8001/storage/k-1/bzImage"},
            "data": {"kernel_revision": {"describe": "v6.1.99"}},
        }))
        .platform(
            json!({"name": "qemu-x86_64", "base_name": "qemu", "arch": "x86_64",
                         "boot_method": "qemu", "context": {"arch": "amd64"}}),
        )
        .params(json!({
            "ramdisk": "/srv/initramfs.cpio.gz",
            "priority": 28,
            "notify": {"callback": {"token": "kernelci-callback", "header": "Authorization"}},
        }))
        .instance(None, Some("http://127.0.0.1:8001/pipeline".into()))
}

fn yaml(text: &str) -> Value {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("YAML");
    serde_json::to_value(v).expect("JSON")
}

#[test]
fn lava_baseline_renders_a_job_with_the_callback_and_priority() {
    let t = Templates::new();
    let out = t
        .render("lava", "baseline.jinja2", &lava_ctx().build())
        .expect("renders");
    let job = yaml(&out);
    assert_eq!(job["device_type"], "qemu");
    assert_eq!(
        job["job_name"],
        "[kernelci-rs] 65a1b2c3d4e5f60718293a4b baseline-qemu v6.1.99"
    );
    assert_eq!(job["priority"], 28);
    assert_eq!(job["context"], json!({"arch": "amd64"}));
    assert_eq!(job["metadata"]["node_id"], "65a1b2c3d4e5f60718293a4b");
    assert_eq!(job["timeouts"]["job"]["minutes"], 25);
    let cb = &job["notify"]["callback"];
    assert_eq!(
        cb["url"],
        "http://127.0.0.1:8001/pipeline/node/65a1b2c3d4e5f60718293a4b"
    );
    assert_eq!(cb["token"], "kernelci-callback");
    assert_eq!(cb["header"], "Authorization");
    assert_eq!(cb["method"], "POST");
    assert_eq!(cb["dataset"], "all");
    assert_eq!(cb["content-type"], "json");
    assert_eq!(job["notify"]["criteria"]["status"], "finished");
    let deploy = &job["actions"][0]["deploy"];
    assert_eq!(deploy["to"], "tmpfs");
    assert_eq!(
        deploy["images"]["kernel"]["image_arg"],
        "-kernel {kernel} -append \"console=ttyS0,115200 rdinit=/init\""
    );
    assert_eq!(
        deploy["images"]["ramdisk"]["url"],
        "file:///srv/initramfs.cpio.gz"
    );
    assert_eq!(job["actions"][1]["boot"]["method"], "qemu");
    assert_eq!(job["actions"][1]["boot"]["prompts"], json!(["/ # "]));
    // No test commands: a boot-only job.
    assert_eq!(job["actions"].as_array().map(Vec::len), Some(2));
}

#[test]
fn lava_baseline_adds_interactive_tests_and_quotes_hostile_values() {
    let t = Templates::new();
    let ctx = lava_ctx().params(json!({
        "test_commands": [
            {"name": "uname", "command": "uname -a", "successes": ["Linux"]},
            {"name": "evil", "command": "echo \"x\": y\n- boot: {method: grub}", "successes": ["a: b"]},
        ],
    }));
    let out = t
        .render("lava", "baseline.jinja2", &ctx.build())
        .expect("renders");
    let job = yaml(&out);
    let actions = job["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 3, "{out}");
    let script = &actions[2]["test"]["interactive"][0]["script"];
    assert_eq!(script[0]["command"], "uname -a");
    assert_eq!(script[0]["successes"][0]["message"], "Linux");
    assert_eq!(
        script[1]["command"],
        "echo \"x\": y\n- boot: {method: grub}"
    );
    assert_eq!(script[1]["successes"][0]["message"], "a: b");
}

#[test]
fn lava_baseline_needs_a_kernel_and_a_callback_url() {
    let t = Templates::new();
    let ctx = JobContext::new("baseline-qemu", "lava")
        .node(json!({"id": "x", "name": "b", "artifacts": {}}))
        .platform(json!({"name": "qemu"}))
        .instance(None, Some("http://h/pipeline".into()));
    let err = t
        .render("lava", "baseline.jinja2", &ctx.build())
        .unwrap_err();
    assert!(
        err.to_string().contains("node.artifacts.kernel is missing"),
        "{err}"
    );
    let ctx = JobContext::new("baseline-qemu", "lava")
        .node(json!({"id": "x", "name": "b", "artifacts": {"kernel": "http://k"}}))
        .platform(json!({"name": "qemu"}));
    let err = t
        .render("lava", "baseline.jinja2", &ctx.build())
        .unwrap_err();
    assert!(err.to_string().contains("instance_callback"), "{err}");
}
