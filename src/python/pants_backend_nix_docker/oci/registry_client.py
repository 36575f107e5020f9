"""The little of the distribution API that skopeo 1.9 cannot do for us: read and write a
referrers index verbatim.

skopeo pushes every image and artifact (see `goals/publish.py` for why). But an OCI 1.1 referrers
index must list each artifact with its `artifactType`, and skopeo 1.9 (containers/image 5.23)
drops that field when it copies an index, or refuses the copy under `--preserve-digests`. So
after skopeo has pushed an artifact, this client asks the registry for its referrers API and,
where there is none, reads the `sha256-<hex>` tag, adds the artifact and writes the tag back.

It finds credentials and trusts CAs where skopeo does: the containers auth files and Docker's
config (with credential helpers), `cert_dir` and `/etc/containers/certs.d/HOST/`. Standard
library only: it runs in the image tool.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pants_backend_nix_docker.oci.image_json import MEDIA_TYPE_INDEX, canonical_json
from pants_backend_nix_docker.oci.referrers import referrers_tag, with_referrer

# Messages carry the words skopeo's would (see registries.explain_failure), so that a failure
# here is explained the same way as one of skopeo's.
_CERT_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")


class RegistryClientError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never the secret, not even in a traceback
        return f"Credentials({self.username!r}, ***)"


def auth_files(env: Mapping[str, str]) -> list[Path]:
    """The files skopeo reads credentials from, in its order: REGISTRY_AUTH_FILE alone when set,
    else the containers files; then Docker's."""
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if env.get("REGISTRY_AUTH_FILE"):
        files = [Path(env["REGISTRY_AUTH_FILE"])]
    else:
        files = [Path(env["XDG_RUNTIME_DIR"]) / "containers/auth.json"] if env.get("XDG_RUNTIME_DIR") else []
        files.append(Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "containers/auth.json")
    files.append(Path(env.get("DOCKER_CONFIG") or home / ".docker") / "config.json")
    return files


def _auth_key(key: str) -> str:
    """An `auths` key as a bare `host[/path]`: Docker writes `https://index.docker.io/v1/`."""
    key = re.sub(r"^https?://", "", key)
    return key.rstrip("/").removesuffix("/v1").removesuffix("/v2")


def credentials_in(config: Mapping[str, Any], host: str, name: str) -> Credentials | str | None:
    """What one auth file says for `host/name`: credentials, the name of a credential helper to
    ask, or None. The most specific `auths` key wins (`host/ns/repo` over `host`), as in skopeo."""
    helpers = config.get("credHelpers") or {}
    if isinstance(helpers, Mapping) and isinstance(helpers.get(host), str):
        return str(helpers[host])
    auths = config.get("auths") or {}
    wanted = f"{host}/{name}"
    best: tuple[int, Mapping[str, Any]] | None = None
    for key, entry in auths.items() if isinstance(auths, Mapping) else ():
        key = _auth_key(key)
        if isinstance(entry, Mapping) and (wanted == key or wanted.startswith(key + "/")):
            if best is None or len(key) > best[0]:
                best = (len(key), entry)
    if best is not None and isinstance(best[1].get("auth"), str):
        user, _, password = base64.b64decode(best[1]["auth"]).decode().partition(":")
        return Credentials(user, password)
    store = config.get("credsStore")
    return str(store) if isinstance(store, str) and store else None


def helper_credentials(helper: str, host: str) -> Credentials | None:
    """Asks `docker-credential-HELPER` (on PATH), as Docker and skopeo do."""
    try:
        proc = subprocess.run(
            [f"docker-credential-{helper}", "get"], input=host, capture_output=True, text=True, timeout=60
        )
    except OSError as e:
        raise RegistryClientError(f"the credential helper docker-credential-{helper} could not run: {e}")
    if proc.returncode != 0:
        return None  # it has nothing for this host
    answer = json.loads(proc.stdout)
    return Credentials(answer.get("Username", ""), answer.get("Secret", ""))


def find_credentials(host: str, name: str, env: Mapping[str, str]) -> Credentials | None:
    for path in auth_files(env):
        try:
            config = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            raise RegistryClientError(f"the auth file {path} cannot be read: {e}")
        found = credentials_in(config, host, name)
        if isinstance(found, str):
            return helper_credentials(found, host)
        if found is not None:
            return found
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="..."` -> ("bearer", {"realm": ..., "service": ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


def ssl_context(host: str, tls_verify: bool, cert_dir: str | None) -> ssl.SSLContext:
    """Trust as skopeo does: the system's CAs plus `*.crt` in `cert_dir` (or certs.d/HOST), with
    a client certificate from a `*.cert`/`*.key` pair there."""
    if not tls_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    dirs = [Path(cert_dir)] if cert_dir else [Path(d) / host for d in _CERT_DIRS]
    for directory in (d for d in dirs if d.is_dir()):
        for crt in sorted(directory.glob("*.crt")):
            context.load_verify_locations(cafile=str(crt))
        for cert in sorted(directory.glob("*.cert")):
            key = cert.with_suffix(".key")
            if key.exists():
                context.load_cert_chain(str(cert), str(key))
    return context


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RegistryClient:
    """Requests to one registry for one repository, authenticating the way it asks."""

    def __init__(
        self,
        host: str,
        name: str,
        credentials: Credentials | None,
        tls_verify: bool = True,
        cert_dir: str | None = None,
    ) -> None:
        self.host, self.name, self._credentials = host, name, credentials
        self._context = ssl_context(host, tls_verify, cert_dir)
        # Without TLS verification skopeo also speaks plain HTTP to a registry that has no TLS.
        self._schemes = ["https", "http"] if not tls_verify else ["https"]
        self._authorization: str | None = None

    def _send(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None) -> Response:
        last: Exception | None = None
        for scheme in list(self._schemes):
            request = urllib.request.Request(f"{scheme}://{self.host}{path}", data=body, method=method)
            for key, value in {
                **headers,
                **({"Authorization": self._authorization} if self._authorization else {}),
            }.items():
                request.add_header(key, value)
            try:
                with urllib.request.urlopen(request, context=self._context, timeout=60) as answer:
                    return Response(answer.status, dict(answer.headers), answer.read())
            except urllib.error.HTTPError as e:
                return Response(e.code, dict(e.headers), e.read())
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                if isinstance(reason, ssl.SSLError) and "http" in self._schemes and scheme == "https":
                    self._schemes = ["http"]  # a plain-HTTP registry, as skopeo would find
                    last = e
                    continue
                if isinstance(reason, ssl.SSLCertVerificationError):
                    raise RegistryClientError(f"x509: the certificate of {self.host} is not trusted: {reason}")
                raise RegistryClientError(f"{self.host}: {reason} (connection refused or unreachable)")
        raise RegistryClientError(f"{self.host}: {last}")

    def _authenticate(self, challenge: str) -> None:
        scheme, params = parse_challenge(challenge)
        creds = self._credentials
        if scheme == "basic":
            if creds is None:
                raise RegistryClientError(f"unauthorized: {self.host} asks for credentials and none were found")
            token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            self._authorization = f"Basic {token}"
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryClientError(f"unauthorized: {self.host} asks for an unknown authentication ({scheme})")
        query = {"scope": f"repository:{self.name}:pull,push"}
        if "service" in params:
            query["service"] = params["service"]
        request = urllib.request.Request(f"{params['realm']}?{urllib.parse.urlencode(query)}")
        if creds is not None:
            basic = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {basic}")
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=60) as answer:
                granted = json.loads(answer.read())
        except urllib.error.HTTPError as e:
            raise RegistryClientError(f"unauthorized: the token service of {self.host} answered {e.code}")
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise RegistryClientError(f"{self.host}: its token service failed: {e}")
        self._authorization = f"Bearer {granted.get('token') or granted.get('access_token')}"

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None) -> Response:
        response = self._send(method, path, headers, body)
        if response.status == 401 and "www-authenticate" in {k.lower() for k in response.headers}:
            challenge = next(v for k, v in response.headers.items() if k.lower() == "www-authenticate")
            self._authenticate(challenge)
            response = self._send(method, path, headers, body)
        if response.status in (401, 403):
            raise RegistryClientError(f"unauthorized: {self.host} answered {response.status} to {method} {path}")
        return response


def add_referrer(client: RegistryClient, subject: str, entry: Mapping[str, Any]) -> str:
    """Makes the registry list the artifact `entry` (already pushed) among `subject`'s referrers,
    and says how."""
    accept = {"Accept": MEDIA_TYPE_INDEX}
    api = client.request("GET", f"/v2/{client.name}/referrers/{subject}", accept)
    if api.status == 200 and _is_index(api.body):
        return "listed by the registry's referrers API"
    tag = referrers_tag(subject)
    current = client.request("GET", f"/v2/{client.name}/manifests/{tag}", accept)
    if current.status == 404:
        index = None
    elif current.status == 200:
        index = json.loads(current.body)
    else:
        raise RegistryClientError(f"{client.host} answered {current.status} to reading the tag {tag}")
    updated = with_referrer(index, subject, entry)
    if updated is None:
        return f"already listed under the tag {tag}"
    written = client.request(
        "PUT", f"/v2/{client.name}/manifests/{tag}", {"Content-Type": MEDIA_TYPE_INDEX}, canonical_json(updated)
    )
    if written.status not in (200, 201):
        detail = written.body.decode(errors="replace")[:300]
        raise RegistryClientError(f"{client.host} refused the referrers index {tag}: {written.status} {detail}")
    return f"listed under the tag {tag}"


def _is_index(body: bytes) -> bool:
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("manifests"), list)


def registry_name(reference: str) -> tuple[str, str]:
    """`host[:port]/path/repo[:tag|@digest]` -> (host, path/repo)."""
    host, _, rest = reference.partition("/")
    name = rest.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rindex(":")]
    return host, name
