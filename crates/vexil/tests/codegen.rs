//! `vexil codegen --lang ts flags.toml`: the registry as TypeScript, checked by the real TypeScript compiler
//! (npm, `tests/web`): a misspelt flag, or a value a flag cannot take, does not compile; `--check` catches a stale file.

use std::path::Path;
use std::process::Command;

fn vexil(directory: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vexil")).args(args).current_dir(directory).output().expect("vexil runs")
}

/// Runs `tsc --noEmit --strict` on `file`; its output when it refuses.
fn typecheck(directory: &Path, file: &str) -> Result<(), String> {
    let tsc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/web/node_modules/typescript/bin/tsc");
    assert!(tsc.exists(), "{} is missing: scripts/test.sh runs npm ci in tests/web", tsc.display());
    let output = Command::new("node")
        .arg(&tsc)
        .args(["--noEmit", "--strict", "--target", "es2020", "--module", "es2020", "--moduleResolution", "bundler", file])
        .current_dir(directory)
        .output()
        .expect("node runs");
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stdout).into_owned()) }
}

#[test]
fn the_registry_as_typescript_makes_a_misspelt_flag_a_compile_error_and_check_finds_a_stale_file() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    std::fs::write(
        root.join("flags.toml"),
        r#"
[[flag]]
name = "ui.new_feature"
default = false
description = "The new voice panel"

[[flag]]
name = "experiment.voice_v2"
type = "string"
default = "control"
variants = [{ name = "control", value = "control" }, { name = "treatment", value = "voice-v2" }]

[[flag]]
name = "backend.rag_max_results"
type = "number"
default = 5
"#,
    )
    .unwrap();
    let generated = vexil(root, &["codegen", "--lang", "ts", "flags.toml"]);
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    std::fs::write(root.join("featureFlags.ts"), &generated.stdout).unwrap();
    let source = String::from_utf8(generated.stdout).unwrap();
    assert!(source.contains("\"experiment.voice_v2\": \"control\" | \"voice-v2\";"), "{source}");
    assert!(source.contains("\"backend.rag_max_results\": 5,"), "the registry default: {source}");

    let reader = "const reader = { get: (_flag: string, fallback: unknown) => fallback };\n";
    std::fs::write(
        root.join("app.ts"),
        format!(
            "import {{ flag, featureFlagDefaults }} from './featureFlags';\n{reader}\
             const on: boolean = flag(reader, 'ui.new_feature');\n\
             const voice: 'control' | 'voice-v2' = flag(reader, 'experiment.voice_v2');\n\
             const limit: number = flag(reader, 'backend.rag_max_results') + featureFlagDefaults['backend.rag_max_results'];\n\
             export {{ on, voice, limit }};\n"
        ),
    )
    .unwrap();
    typecheck(root, "app.ts").expect("the application compiles");
    std::fs::write(
        root.join("misspelt.ts"),
        format!("import {{ flag }} from './featureFlags';\n{reader}export const x = flag(reader, 'ui.new_featur');\n"),
    )
    .unwrap();
    let refused = typecheck(root, "misspelt.ts").expect_err("a misspelt flag does not compile");
    assert!(refused.contains("ui.new_featur"), "{refused}");
    std::fs::write(
        root.join("wrong_value.ts"),
        format!("import {{ flag }} from './featureFlags';\n{reader}export const x = flag(reader, 'experiment.voice_v2') === 'voice-v3';\n"),
    )
    .unwrap();
    typecheck(root, "wrong_value.ts").expect_err("a value the flag cannot take does not compile");

    // --check: quiet and successful while the file is current, a failure that says what to run once it is stale.
    let current = vexil(root, &["codegen", "--lang", "ts", "flags.toml", "--check", "featureFlags.ts"]);
    assert!(current.status.success() && current.stdout.is_empty(), "{}", String::from_utf8_lossy(&current.stderr));
    let registry = std::fs::read_to_string(root.join("flags.toml")).unwrap();
    std::fs::write(root.join("flags.toml"), registry.replace("default = 5", "default = 8")).unwrap();
    let stale = vexil(root, &["codegen", "--lang", "ts", "flags.toml", "--check", "featureFlags.ts"]);
    assert!(!stale.status.success());
    let said = String::from_utf8_lossy(&stale.stderr);
    assert!(said.contains("featureFlags.ts is stale") && said.contains("vexil codegen --lang ts flags.toml"), "{said}");
}
