"""The least an image of each alternative must hold: the files its job loads, measured here.

No published image can be pulled on the benchmark machine, so instead of the alternatives' image
sizes this measures a floor under them from the machine's own packages: the executables each
client runs, every shared library they load, the CA bundle they read and, for Python, every
module the job imports. A real image holds all of this and more (a package manager, a shell's
userland, locale data), so each figure is a lower bound, not an image size.

Run it with the benchmark venv's Python, so that `requests` is the one the benchmark used.
Prints JSON: {client: {"bytes": N, "files": N, "what": "..."}}.
"""

import json
import os
import re
import shutil
import subprocess
import sys


def real_files(paths):
    """Existing regular files, symlinks resolved, each counted once."""
    seen = set()
    for path in paths:
        if path and os.path.exists(path):
            real = os.path.realpath(path)
            if os.path.isfile(real):
                seen.add(real)
    return seen


def shared_libraries(executable):
    """The libraries the dynamic loader maps for `executable` (via ldd, for system binaries)."""
    try:
        text = subprocess.run(
            ["ldd", executable], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return set()
    libraries = set()
    for line in text.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            libraries.add(match.group(1))
    return libraries


def ca_bundle():
    """The system CA bundle curl reads in production (Debian's path)."""
    return "/etc/ssl/certs/ca-certificates.crt"


def recipe_files(executables):
    files = set()
    for name in executables:
        path = shutil.which(name)
        if path:
            files.add(path)
            files |= shared_libraries(path)
    files.add(ca_bundle())
    return real_files(files)


def python_files():
    """The interpreter, the libraries mapped once requests is imported, and the modules loaded.

    Importing requests here loads what the job script loads before its first request; the
    script itself adds a few hundred bytes. A module counts by its cached bytecode when that
    exists (what the interpreter reads), else its source.
    """
    import requests  # noqa: F401  (imported for its side effect on sys.modules)
    import certifi

    files = {sys.executable, certifi.where()}
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/"):
                files.add(parts[5].strip())
    for module in list(sys.modules.values()):
        spec = getattr(module, "__spec__", None)
        cached = getattr(spec, "cached", None) if spec else None
        origin = getattr(module, "__file__", None)
        files.add(cached if cached and os.path.exists(cached) else origin)
    # This script is not part of the job.
    files.discard(os.path.abspath(__file__))
    return real_files(files)


def summary(files, what):
    return {
        "bytes": sum(os.path.getsize(f) for f in files),
        "files": len(files),
        "what": what,
    }


def main():
    result = {
        "curl | jq recipe": summary(
            recipe_files(["sh", "curl", "jq"]),
            "sh, curl, jq, their shared libraries, the CA bundle",
        ),
        "Python requests": summary(
            python_files(),
            "the python interpreter, its shared libraries, every module imported, certifi's CA bundle",
        ),
        "curl --next (1 process)": summary(
            recipe_files(["curl"]),
            "curl, its shared libraries, the CA bundle",
        ),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
