"""Repositories the WORKSPACE defines, all generated on this machine.

Nothing here downloads: the Python toolchain points at the project's
virtualenv, and `rules_cc` and `rules_java` (which Bazel 4's own
`@bazel_tools` loads while it resolves the toolchains of any py_test) are a
few generated lines that forward to the rules built into Bazel, instead of
the archives Bazel would otherwise fetch from GitHub. `remote_coverage_tools`
(Java jars on mirror.bazel.build that every test rule names for `bazel
coverage`) is two scripts that say coverage is not available offline.
"""

_VENV_TOOLCHAIN = """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

# {python} (Python {version}, prefix {prefix})
py_runtime(
    name = "py3_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!{python}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)

# Every test reads this file, so its results are cached only as long as the
# interpreter and requirements.lock (what `make venv` installs) stay the same.
exports_files(["venv.txt"], visibility = ["//visibility:public"])
"""

def _venv_python_impl(rctx):
    workspace = rctx.path(Label("//:WORKSPACE")).dirname
    python = rctx.os.environ.get("MMSE_PYTHON", "")
    if not python:
        python = "%s/.venv/bin/python" % workspace
    if not rctx.path(python).exists:
        fail("No Python interpreter at %s: run `make venv` first, or point " % python +
             "MMSE_PYTHON at the project's virtualenv python " +
             "(bazel test --repo_env=MMSE_PYTHON=/abs/path/bin/python //...).")
    result = rctx.execute([python, "-c", "import sys; print('%d.%d.%d' % " +
                                         "sys.version_info[:3]); print(sys.prefix)"])
    if result.return_code != 0:
        fail("%s does not run: %s" % (python, result.stderr))
    version, prefix = result.stdout.strip().split("\n")
    lock = rctx.read(Label("//:requirements.lock"))
    rctx.file("venv.txt", "python %s\nversion %s\nprefix %s\n%s" % (
        python,
        version,
        prefix,
        lock,
    ))
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    rctx.file("BUILD", _VENV_TOOLCHAIN.format(python = python, version = version, prefix = prefix))

venv_python = repository_rule(
    implementation = _venv_python_impl,
    environ = ["MMSE_PYTHON"],
    local = True,
    doc = "A py_runtime toolchain for the virtualenv's interpreter " +
          "($MMSE_PYTHON, else <workspace>/.venv/bin/python).",
)

def _native_rules_impl(rctx):
    lines = ['"""%s, forwarded to the rules built into Bazel."""' % rctx.attr.defs]
    for rule in rctx.attr.rules:
        lines.append("")
        lines.append("def %s(**attrs):" % rule)
        lines.append("    native.%s(**attrs)" % rule)
    package = rctx.attr.defs.split(":")[0]
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    rctx.file("BUILD", "")
    rctx.file(package + "/BUILD", "")
    rctx.file(package + "/defs.bzl", "\n".join(lines) + "\n")

native_rules = repository_rule(
    implementation = _native_rules_impl,
    attrs = {
        "defs": attr.string(doc = "the .bzl file to write, e.g. cc:defs.bzl"),
        "rules": attr.string_list(doc = "the native rules it forwards to"),
    },
    local = True,
    doc = "A rules_cc/rules_java stand-in: Bazel's native rules, no download.",
)

_NO_COVERAGE = """\
#!/bin/sh
echo "bazel coverage is not available offline: its report generator and \\
LCOV merger are Bazel's remote_coverage_tools, a Java archive on \\
mirror.bazel.build that this workspace does not download. The tests \\
themselves ran: see bazel-testlogs/." >&2
exit 1
"""

def _offline_coverage_tools_impl(rctx):
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    rctx.file("no_coverage.sh", _NO_COVERAGE, executable = True)
    rctx.file("BUILD", "\n".join([
        "package(default_visibility = [\"//visibility:public\"])",
        "",
        "sh_binary(name = \"coverage_report_generator\", srcs = [\"no_coverage.sh\"])",
        "",
        "sh_binary(name = \"lcov_merger\", srcs = [\"no_coverage.sh\"])",
        "",
    ]))

offline_coverage_tools = repository_rule(
    implementation = _offline_coverage_tools_impl,
    local = True,
    doc = "@remote_coverage_tools without the download: test rules name " +
          "its targets even when nothing collects coverage.",
)
