"""Policy parsing, compilation, lint and explain (pure: no kernel needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanwatch.errors import PolicyError
from fanwatch.policy import CompiledPolicy, Subject, load_policy, parse_policy
from fanwatch.policy.compiled import compile_path_glob, extension_key, literal_prefix
from fanwatch.policy.lint import check_policy, covers, explain

POLICY = """\
version = 1
default = "allow"

[[rule]]
id = "cat-may-read"
path = "/srv/secret/**"
exe = "/usr/bin/cat"
decision = "audit"

[[rule]]
id = "no-secrets"
path = "/srv/secret/**"
decision = "deny"
errno = "EIO"

[[rule]]
id = "no-libs"
access = ["exec"]
path = "/opt/**/*.so"
decision = "deny"
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return str(path)


def test_rules_keep_order_lines_and_values():
    policy, findings = parse_policy(POLICY, "p.toml")
    assert findings == []
    assert [(r.id, r.line) for r in policy.rules] == [
        ("cat-may-read", 4),
        ("no-secrets", 10),
        ("no-libs", 16),
    ]
    assert policy.rules[1].errno == "EIO"
    assert policy.rules[0].access == ("open", "exec")
    assert policy.rules[2].access == ("exec",)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ('[[rule]]\nid = "a"\ncolour = "red"\n', "p.toml:3", "unknown key 'colour'"),
        ('defualt = "deny"\n', "p.toml:1", "unknown key 'defualt'"),
        (
            '[[rule]]\nid = "a"\ndecision = "maybe"\n',
            "p.toml:3",
            "decision must be one of",
        ),
        (
            '[[rule]]\nid = "a"\ndecision = "deny"\nerrno = "ENOENT"\n',
            "p.toml:4",
            "cannot be returned",
        ),
        ('[[rule]]\ndecision = "deny"\n', "p.toml:1", "needs an id"),
        ('[[rule]]\nid = "a"\n\n[[rule]]\nid = "a"\n', "p.toml:5", "duplicate id"),
        ('[[rule]]\nid = "a"\nuid = "root"\n', "p.toml:3", "uid must be a number"),
        (
            '[[rule]]\nid = "a"\naccess = ["read"]\n',
            "p.toml:3",
            "access must be a list",
        ),
        ("default = \n", "p.toml:1", "Invalid value"),
        (
            '[[rule]]\nid = "a"\npath = "/a/[b"\n',
            "p.toml:3",
            "path '/a/[b': '[' without a closing ']'",
        ),
        (
            '[[rule]]\nid = "a"\npath = ["/x", "/a/{b,c"]\n',
            "p.toml:3",
            "path '/a/{b,c': '{' without a closing '}'",
        ),
        (
            '[[rule]]\nid = "a"\n\npath = "/a/[b/c]"\n',
            "p.toml:4",
            "'[' without a closing ']'",
        ),
        (
            '[[rule]]\nid = "a"\nexe = "/bin/{sh"\n',
            "p.toml:3",
            "exe '/bin/{sh': '{' without",
        ),
        (
            '[[rule]]\nid = "a"\ncomm = "[ab"\n',
            "p.toml:3",
            "comm '[ab': '[' without",
        ),
        (
            '[[rule]]\nid = "a"\ndecision = "deny"\nerrno = 5\n',
            "p.toml:4",
            'errno must be a name such as "EIO", not 5',
        ),
        (
            '[[rule]]\nid = "a"\ndecision = "deny"\nerrno = 16\n',
            "p.toml:4",
            'errno must be a name such as "EBUSY", not 16',
        ),
        (
            '[[rule]]\nid = "a"\npid = 99999999999999999999\n',
            "p.toml:3",
            "pid 99999999999999999999 is out of range (0 to 2147483647)",
        ),
        (
            '[[rule]]\nid = "a"\npid = [1, 2147483648]\n',
            "p.toml:3",
            "pid 2147483648 is out of range",
        ),
        (
            '[[rule]]\nid = "a"\nuid = 4294967295\n',
            "p.toml:3",
            "uid 4294967295 is out of range (0 to 4294967294)",
        ),
        ('[[rule]]\nid = "a"\ngid = -1\n', "p.toml:3", "gid -1 is out of range"),
    ],
)
def test_errors_name_file_and_line(text, where, message):
    _, findings = parse_policy(text, "p.toml")
    assert findings, text
    assert findings[0].location == where
    assert message in findings[0].message


@pytest.mark.parametrize(
    "pattern",
    [
        "/a/\\\\[b",
        "/a/\\\\{b",
        "/a/[]x]",
        "/a/[!]]",
        "/a/[[]",
        "/a/{b,{c,d}}",
        "/a/b}",
        "/a/[{]",
    ],
)
def test_balanced_and_escaped_globs_are_accepted(pattern):
    _, findings = parse_policy(f'[[rule]]\nid = "a"\npath = "{pattern}"\n')
    assert findings == []


def test_limits_of_process_numbers_are_accepted():
    text = '[[rule]]\nid = "a"\npid = 2147483647\nuid = 4294967294\ngid = 0\n'
    policy, findings = parse_policy(text)
    assert findings == []
    assert policy.rules[0].pid == {2**31 - 1}


def test_load_policy_raises_the_first_error_with_its_location(tmp_path):
    path = write(tmp_path, '[[rule]]\nid = "a"\ndecision = "nope"\n')
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.location == f"{path}:3"
    assert str(caught.value).startswith(f"{path}:3: rule 'a': decision must be")


def test_first_match_wins_and_process_rules_are_not_file_only():
    policy = CompiledPolicy(parse_policy(POLICY)[0])
    cat = Subject(pid=1, exe="/usr/bin/cat")
    less = Subject(pid=2, exe="/usr/bin/less")
    assert policy.evaluate("open", "/srv/secret/k", cat) == (
        "audit",
        "cat-may-read",
        None,
        False,
    )
    assert policy.evaluate("open", "/srv/secret/k", less) == (
        "deny",
        "no-secrets",
        "EIO",
        False,
    )
    assert policy.evaluate("exec", "/opt/x.so", None) == ("deny", "no-libs", None, True)
    assert policy.evaluate("open", "/opt/x.so", None) == ("allow", None, None, True)
    # Unknown process details never match a process condition.
    assert (
        policy.evaluate("open", "/srv/secret/k", Subject(pid=3)).rule_id == "no-secrets"
    )


def test_globs():
    assert compile_path_glob("/srv/**").fullmatch("/srv/a/.hidden/b")
    assert not compile_path_glob("/srv/**").fullmatch("/srvx/a")
    assert compile_path_glob("*.so").fullmatch("/usr/lib/libc.so")
    assert compile_path_glob("/a/{b,c}/*.txt").fullmatch("/a/c/x.txt")
    assert literal_prefix("/srv/app/**/*.py") == "/srv/app"
    assert literal_prefix("/etc/shadow") == "/etc/shadow"
    assert literal_prefix("**/x") == ""
    assert extension_key("**/*.tar.gz") == "gz"
    assert extension_key("/a/*x") is None


SEGMENTS = st.sampled_from(["a", "b", "lib", "x.so", "y.txt", ".h"])
PATTERNS = st.sampled_from(
    [
        "/a/**",
        "/a/b/*",
        "/a/*.so",
        "**/*.so",
        "*.txt",
        "/b/lib/x.so",
        "/**",
        "/a/{b,lib}/**",
        "/*/b",
    ]
)


@st.composite
def policies(draw):
    rules = []
    for i in range(draw(st.integers(1, 8))):
        paths = draw(st.lists(PATTERNS, min_size=0, max_size=2))
        uid = draw(st.sampled_from(["", "uid = 0\n", "uid = [1, 2]\n"]))
        decision = draw(st.sampled_from(["allow", "deny", "audit"]))
        path = f"path = {paths!r}\n".replace("'", '"') if paths else ""
        rules.append(f'[[rule]]\nid = "r{i}"\n{path}{uid}decision = "{decision}"\n')
    return 'default = "deny"\n' + "".join(rules)


@settings(max_examples=200, deadline=None)
@given(
    policies(), st.lists(SEGMENTS, min_size=1, max_size=4), st.sampled_from([0, 1, 5])
)
def test_the_index_decides_like_a_plain_walk_of_the_rules(text, segments, uid):
    policy = parse_policy(text)[0]
    compiled = CompiledPolicy(policy)
    path = "/" + "/".join(segments)
    subject = Subject(pid=9, uid=uid)
    expected = policy.default, None
    for rule in policy.rules:
        path_ok = not rule.path or any(
            compile_path_glob(p).fullmatch(path) for p in rule.path
        )
        uid_ok = not rule.uid or uid in rule.uid
        if path_ok and uid_ok:
            expected = rule.decision, rule.id
            break
    verdict = compiled.evaluate("open", path, subject)
    assert (verdict.decision, verdict.rule_id) == expected
    explained = explain(policy, "open", path, subject).verdict
    assert (explained.decision, explained.rule_id) == expected


def test_unreachable_rules_are_reported(tmp_path):
    text = (
        POLICY
        + '\n[[rule]]\nid = "shadowed"\npath = "/srv/secret/a/*.txt"\n'
        + 'decision = "allow"\n'
    )
    policy, findings = check_policy(write(tmp_path, text))
    [finding] = findings
    assert finding.code == "unreachable-rule" and finding.rule_id == "shadowed"
    assert finding.location.endswith(":22")
    assert "rule 'no-secrets' (line 10)" in finding.message
    # A rule narrowed by a process condition does not hide later ones.
    assert not covers(policy.rules[0], policy.rules[1])


def test_globs_that_match_nothing_under_the_roots(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "conf").write_text("x")
    text = (
        f'[[rule]]\nid = "ok"\npath = "{root}/etc/*"\ndecision = "deny"\n\n'
        f'[[rule]]\nid = "missing"\npath = "{root}/nothing/**"\ndecision = "deny"\n\n'
        '[[rule]]\nid = "outside"\npath = "/elsewhere/**"\ndecision = "deny"\n'
    )
    _, findings = check_policy(write(tmp_path, text), [str(root)])
    assert [(f.rule_id, f.code, f.location.rsplit(":", 1)[1]) for f in findings] == [
        ("missing", "glob-matches-nothing", "8"),
        ("outside", "glob-matches-nothing", "13"),
    ]
    assert "can match nothing under" in findings[1].message


def test_denying_the_guards_own_libraries_is_flagged(tmp_path):
    _, findings = check_policy(
        write(tmp_path, '[[rule]]\nid = "libs"\npath = "*.so"\ndecision = "deny"\n')
    )
    assert [f.code for f in findings] == ["denies-guard-itself"]


def fanwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fanwatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_command_exit_codes_and_output(tmp_path):
    good = write(tmp_path, POLICY)
    done = fanwatch("policy", "check", good)
    assert done.returncode == 0
    assert done.stdout == f"{good}: ok: 3 rules, default allow\n"

    bad = write(tmp_path, POLICY + "bogus = 1\n")
    done = fanwatch("policy", "check", bad)
    assert done.returncode == 2
    assert f"{bad}:21: error: rule 'no-libs': unknown key 'bogus'" in done.stdout

    shadowed = write(tmp_path, POLICY + '[[rule]]\nid = "z"\npath = "/srv/secret/a"\n')
    assert fanwatch("policy", "check", shadowed).returncode == 0
    assert fanwatch("policy", "check", "--strict", shadowed).returncode == 2

    missing = fanwatch("policy", "check", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("fanwatch: ") and "Traceback" not in missing.stderr


def test_explain_command_walks_the_rules(tmp_path):
    path = write(tmp_path, POLICY)
    done = fanwatch(
        "policy", "explain", path, "--path", "/srv/secret/k", "--exe", "/usr/bin/less"
    )
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert "rule 'cat-may-read' (line 4): no: exe /usr/bin/less is not in" in lines[1]
    assert "rule 'no-secrets' (line 10): MATCH: -> deny (EIO)" in lines[2]
    assert lines[3].startswith("decision: deny (EIO) by rule 'no-secrets'")
    assert "never cached in the kernel" in lines[3]

    done = fanwatch(
        "policy", "explain", path, "--path", "/opt/a.so", "--access", "exec"
    )
    assert done.stdout.splitlines()[-1] == (
        "decision: deny by rule 'no-libs'; the file alone decides; "
        "deny is never cached, each access is judged again"
    )

    done = fanwatch("policy", "explain", path, "--path", "/opt/a.txt")
    assert done.stdout.splitlines()[-1] == (
        "decision: allow by the default (line 2); the file alone decides; "
        "this allow is cached in the kernel until the file changes"
    )


def test_explain_says_the_guard_never_denies_its_interpreter(tmp_path):
    path = write(tmp_path, 'default = "deny"\n')
    done = fanwatch("policy", "explain", path, "--path", sys.executable)
    assert "always allowed" in done.stdout


def test_the_example_policy_is_valid():
    from conftest import REPO

    done = fanwatch("policy", "check", f"{REPO}/examples/policy.toml")
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "x = " + "{a = " * 5_000 + "1" + "}" * 5_000 + "\n",
    ],
    ids=["arrays", "inline-tables"],
)
def test_deeply_nested_toml_is_one_error_not_a_traceback(tmp_path, text):
    _, findings = parse_policy(text, "p.toml")
    assert [(f.code, f.message) for f in findings] == [
        ("toml-syntax", "arrays or tables nested too deeply")
    ]

    path = write(tmp_path, text)
    done = fanwatch("policy", "check", path)
    assert done.returncode == 2
    assert done.stdout == (
        f"{path}: error: arrays or tables nested too deeply [toml-syntax]\n"
    )
    assert done.stderr == ""

    done = fanwatch("policy", "explain", path, "--path", "/x")
    assert done.returncode == 2
    assert done.stderr == f"fanwatch: {path}: arrays or tables nested too deeply\n"
