"""The job as a Python pipe does it with requests (the HTTP library of Atlassian's pipe toolkit).

Module-level `requests.post`/`requests.get`, as such pipes call them: a session per request. The
toolkit itself (logging, schema validation) is not imported, so a real toolkit-based pipe starts
slower than this.
"""

import os

import requests


def main() -> None:
    env = os.environ
    ca_bundle = env["CA_BUNDLE"]
    response = requests.post(
        env["TOKEN_URL"],
        auth=(env["CLIENT_ID"], env["CLIENT_SECRET"]),
        data={"grant_type": "client_credentials"},
        verify=ca_bundle,
        timeout=30,
    )
    response.raise_for_status()
    token = response.json()["access_token"]
    response = requests.get(
        f"{env['API_URL']}/repositories/{env['REPOSITORY']}",
        headers={"Authorization": f"Bearer {token}"},
        verify=ca_bundle,
        timeout=30,
    )
    response.raise_for_status()
    fd = os.open(env["OUTPUT_FILE"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"BITBUCKET_ACCESS_TOKEN={token}\n")


if __name__ == "__main__":
    main()
