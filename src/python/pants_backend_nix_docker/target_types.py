"""The `nix_docker_image` target: an OCI image of Nix store paths, built by `pants package`."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Iterable, Optional

from pants.core.goals.package import OutputPathField
from pants.core.goals.test import TestTimeoutField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    Dependencies,
    DictStringToStringField,
    Field,
    FieldSet,
    IntField,
    InvalidFieldException,
    InvalidFieldTypeException,
    MultipleSourcesField,
    SingleSourceField,
    StringField,
    StringSequenceField,
    Target,
    TargetFilesGenerator,
)
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text

from pants_backend_nix_docker.nix.installables import InstallableError, for_system, parse_installable
from pants_backend_nix_docker.nix.sizes import parse_size
from pants_backend_nix_docker.oci.accounts import parse_directories, parse_groups, parse_users
from pants_backend_nix_docker.oci.base_image_source import BaseImageError, parse_base_image
from pants_backend_nix_docker.oci.image_checks import (
    CheckSpecError,
    parse_commands,
    parse_config,
    parse_files,
    parse_service,
)
from pants_backend_nix_docker.oci.platforms import PlatformError, platform_of
from pants_backend_nix_docker.oci.rootfs import RootfsError, check_image_path
from pants_backend_nix_docker.oci.tags import TagError, check_template

DEFAULT_CREATED = "1970-01-01T00:00:01Z"
MAX_LAYERS_LIMIT = 125  # overlayfs-based runtimes stop at 128 lower layers; keep a margin

_REPOSITORY_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_USER_PART_RE = re.compile(r"^(?:[0-9]+|[a-z_][a-z0-9_.-]*\$?)$")
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_PORT_RE = re.compile(r"^([0-9]+)(?:/(tcp|udp|sctp))?$")


def _invalid(field: type[Field], address: Address, value: Any, problem: str, fix: str) -> InvalidFieldException:
    return InvalidFieldException(
        f"The {field.alias!r} field in target {address} has an invalid value {value!r}: " f"{problem}. {fix}"
    )


def _check_absolute_path(field: type[Field], address: Address, value: str) -> str:
    if not value.startswith("/"):
        raise _invalid(field, address, value, "it is not an absolute path", f"Write it as '/{value}'.")
    if "\0" in value or posixpath.normpath(value) != value.rstrip("/") and value != "/":
        raise _invalid(
            field,
            address,
            value,
            "it is not a normalised path",
            f"Write it as {posixpath.normpath(value)!r}.",
        )
    return value


class NixImagePackagesField(StringSequenceField):
    alias = "packages"
    required = True
    help = help_text(
        """
        The Nix installables whose runtime closure is the image's `/nix/store`.

        Each entry is a store path (`/nix/store/<hash>-hello-2.12`), an attribute of a `.nix` file
        in the repo (`packages.nix#hello`, relative to this BUILD file, or
        `//build-support/nix/default.nix#python3` from the build root, built like
        `nix-build FILE -A ATTR`), or a flake installable (`nixpkgs#hello`, `.#app`).
        Example: `packages=["nixpkgs#python3", "//nix/default.nix#cacert"]`.

        Strings in `entrypoint`, `cmd`, `env` and `working_dir` can refer to a package's store path
        as `${pkgs.NAME}`, where NAME is the attribute (`hello` for `nixpkgs#hello`) or, for a store
        path, its name (`hello-2.12`): `entrypoint=["${pkgs.hello}/bin/hello"]`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        assert value is not None
        if not value:
            raise _invalid(
                cls, address, [], "it is empty", 'List at least one installable, e.g. `packages=["nixpkgs#hello"]`.'
            )
        for entry in value:
            try:
                parse_installable(for_system(entry, "x86_64-linux"), address.spec_path)
            except InstallableError as e:
                raise _invalid(
                    cls,
                    address,
                    entry,
                    str(e),
                    "See `pants help nix_docker_image` for the forms an installable can take.",
                )
        twice = sorted({entry for entry in value if value.count(entry) > 1})
        if twice:
            raise _invalid(
                cls, address, list(value), f"{', '.join(twice)} is listed twice", "List each installable once."
            )
        return value


class NixImageEntrypointField(StringSequenceField):
    alias = "entrypoint"
    help = help_text(
        """
        The image's `Entrypoint`: the program (and its first arguments) the container runs.

        Example: `entrypoint=["${pkgs.python3}/bin/python3", "-m", "http.server"]`.
        """
    )


class NixImageCmdField(StringSequenceField):
    alias = "cmd"
    help = help_text(
        """
        The image's `Cmd`: the default arguments to the entrypoint, or the command when there is
        no entrypoint. Example: `cmd=["${pkgs.hello}/bin/hello"]`.
        """
    )


class NixImageEnvField(DictStringToStringField):
    alias = "env"
    help = help_text(
        """
        Environment variables of the image's processes.

        Example: `env={"PATH": "${pkgs.busybox}/bin", "LANG": "C.UTF-8"}`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[dict[str, str]], address: Address) -> Any:
        value = super().compute_value(raw_value, address)
        for key in value or {}:
            if not key or "=" in key or "\0" in key:
                raise _invalid(
                    cls,
                    address,
                    key,
                    "an environment variable name must be non-empty and contain no '=' or NUL",
                    "Rename the variable.",
                )
        return value


class NixImageWorkingDirField(StringField):
    alias = "working_dir"
    help = 'The working directory of the image\'s processes, an absolute path. Example: `working_dir="/data"`.'

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        return None if value is None else _check_absolute_path(cls, address, value)


class NixImageExposedPortsField(Field):
    alias = "exposed_ports"
    default: ClassVar[tuple[str, ...]] = ()
    help = help_text(
        """
        Ports the image documents as listened on, as numbers or `PORT/PROTOCOL` (tcp, udp or sctp;
        tcp when left out). Example: `exposed_ports=[8080, "53/udp"]`.
        """
    )
    value: tuple[str, ...]

    @classmethod
    def compute_value(cls, raw_value: Optional[Any], address: Address) -> tuple[str, ...]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return ()
        if isinstance(value, (str, int)) or not isinstance(value, (list, tuple)):
            raise InvalidFieldTypeException(
                address, cls.alias, raw_value, expected_type="a list of port numbers or 'PORT/PROTOCOL' strings"
            )
        ports = []
        for item in value:
            match = _PORT_RE.match(str(item)) if isinstance(item, (str, int)) and not isinstance(item, bool) else None
            number = int(match.group(1)) if match else 0
            if not match or not 1 <= number <= 65535:
                raise _invalid(
                    cls,
                    address,
                    item,
                    "a port is a number from 1 to 65535, optionally followed by /tcp, /udp or /sctp",
                    "For example 8080 or '53/udp'.",
                )
            ports.append(f"{number}/{match.group(2) or 'tcp'}")
        if len(set(ports)) != len(ports):
            duplicate = next(p for p in ports if ports.count(p) > 1)
            raise _invalid(cls, address, list(value), f"{duplicate} is listed twice", "List each port once.")
        return tuple(ports)


class NixImageVolumesField(StringSequenceField):
    alias = "volumes"
    help = 'Absolute paths the image marks as volumes. Example: `volumes=["/data"]`.'

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for volume in value or ():
            _check_absolute_path(cls, address, volume)
        return value


class NixImageUserField(StringField):
    alias = "user"
    help = help_text(
        """
        The user the image's processes run as: a name or a uid, optionally with `:group` or
        `:gid`. Example: `user="1000:1000"` or `user="app"`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None:
            parts = value.split(":")
            if len(parts) > 2 or not all(_USER_PART_RE.match(p) for p in parts):
                raise _invalid(
                    cls,
                    address,
                    value,
                    "expected USER or USER:GROUP, each a name or a number",
                    "For example 'app', '1000' or '1000:1000'.",
                )
        return value


class NixImageLabelsField(DictStringToStringField):
    alias = "labels"
    help = (
        'Labels of the image config. Example: `labels={"org.opencontainers.image.source": "https://example.com/repo"}`.'
    )


class NixImageRepositoryField(StringField):
    alias = "repository"
    help = help_text(
        """
        The repository part of the image's name (`REPOSITORY:TAG`), used in the archive's tags.
        Defaults to the name of the BUILD file's directory (`hello` for `examples/hello:image`),
        or the target name at the build root. Example: `repository="acme/hello"`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not _REPOSITORY_RE.match(value):
            raise _invalid(
                cls,
                address,
                value,
                "a repository is lowercase letters, digits and separators (. _ __ -), in /-separated parts",
                "For example 'acme/hello-app'.",
            )
        return value

    def value_or_default(self, address: Address) -> str:
        if self.value:
            return self.value
        base = posixpath.basename(address.spec_path) or address.target_name
        candidate = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("._-") or "image"
        return candidate


class NixImageTagsField(StringSequenceField):
    alias = "image_tags"
    default = ("latest",)
    help = help_text(
        """
        Tags of the image (each becomes `REPOSITORY:TAG`), with placeholders filled in at build
        time: `{git_revision}` (the short HEAD commit, or `dev` when tracked files have
        changes), `{closure_hash}` (12 hex digits that change exactly when the store closure
        does) and `{repository}` (with '/' as '-'). Example:
        `image_tags=["{git_revision}", "py-{closure_hash}", "latest"]`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        assert value is not None
        if not value:
            raise _invalid(cls, address, [], "an image needs at least one tag", "Leave the field out for `latest`.")
        for tag in value:
            try:
                check_template(tag)
            except TagError as e:
                raise _invalid(cls, address, tag, str(e), "For example '1.0.3' or '{git_revision}'.")
        if len(set(value)) != len(value):
            raise _invalid(cls, address, list(value), "a tag is listed twice", "List each tag once.")
        return value


class NixImageMaxLayersField(IntField):
    alias = "max_layers"
    default = 100
    value: int
    help = help_text(
        f"""
        The most layers the image may have, the image-specific top layer included (2 to
        {MAX_LAYERS_LIMIT}). The most shared store paths get layers of their own; the rest
        share one. Example: `max_layers=40`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> int:
        value = super().compute_value(raw_value, address)
        assert value is not None
        if not 2 <= value <= MAX_LAYERS_LIMIT:
            raise _invalid(
                cls, address, value, f"it must be from 2 to {MAX_LAYERS_LIMIT}", "Most images want the default, 100."
            )
        return value


class NixImageLayeringField(StringField):
    alias = "layering"
    valid_choices = ("popularity", "size-aware")
    help = help_text(
        """
        How the closure is split into layers when it has more paths than `max_layers` allows;
        defaults to [nix-docker].layering. `popularity`: the most shared paths get a layer each,
        the rest share one. `size-aware`: small neighbouring layers merge, so none becomes a large
        catch-all. Example: `layering="size-aware"`.
        """
    )


class NixImageCreatedField(StringField):
    alias = "created"
    default = DEFAULT_CREATED
    value: str
    help = help_text(
        f"""
        The image's creation time, RFC 3339. The default, `{DEFAULT_CREATED}`, keeps the image
        bit-for-bit reproducible; `"now"` stamps the build time, so every build gets a new
        digest. Example: `created="2024-05-01T12:00:00Z"`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        assert value is not None
        if value == "now":
            return value
        if _RFC3339_RE.match(value):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
                return value
            except ValueError:
                pass
        raise _invalid(cls, address, value, "expected an RFC 3339 time or 'now'", f"For example {DEFAULT_CREATED!r}.")


class NixImageDependenciesField(Dependencies):
    help = help_text(
        """
        Pants artifacts to put in the image's top layer, under `app_dir`: packageable targets
        (`pex_binary`, `python_distribution`, `archive`) land as `APP_DIR/FILE_NAME` of what they
        build (`/app/app.pex`), `files` at `APP_DIR/PATH_FROM_BUILD_ROOT`, `resources` at
        `APP_DIR/PATH_FROM_SOURCE_ROOT`. The executable bit is kept (0755, else 0644).
        Example: `dependencies=[":app"]`.
        """
    )


class NixImageAppDirField(StringField):
    alias = "app_dir"
    default = "/app"
    value: str
    help = 'Where the image\'s `dependencies` land. Example: `app_dir="/srv/app"`.'

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        assert value is not None
        try:
            return check_image_path(value, cls.alias)
        except RootfsError as e:
            raise _invalid(cls, address, value, str(e), "For example '/app'.")


class NixImagePathsToLinkField(StringSequenceField):
    alias = "paths_to_link"
    help = help_text(
        """
        Sub-directories of every package in `packages` to mirror into the image root with
        symlinks, like nixpkgs' `buildEnv { pathsToLink = ...; }`: `paths_to_link=["/bin"]` makes
        `/bin/python3 -> /nix/store/...-python3/bin/python3`. Two packages that provide the same
        file are an error.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for path in value or ():
            try:
                check_image_path(path, cls.alias)
            except RootfsError as e:
                raise _invalid(cls, address, path, str(e), "For example '/bin'.")
        return value


def _thaw(value: Any) -> Any:
    """The plain dicts and lists a frozen BUILD-file value was made from."""
    if isinstance(value, FrozenDict):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


class _AccountsField(Field):
    """A dict in the BUILD file, kept as written (so `pants peek` shows it as a dict) and validated
    by `parse`, which also gives the hashable specs the rules use (`parsed`)."""

    default = None
    example: ClassVar[str]
    value: Optional[FrozenDict[str, Any]]

    @staticmethod
    def parse(raw: Any) -> tuple:
        raise NotImplementedError

    @classmethod
    def compute_value(cls, raw_value: Optional[Any], address: Address) -> Optional[FrozenDict[str, Any]]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise InvalidFieldTypeException(address, cls.alias, raw_value, expected_type=f"a dict, e.g. {cls.example}")
        try:
            cls.parse(value)
        except RootfsError as e:
            raise _invalid(cls, address, value, str(e), f"For example {cls.example}.")
        return FrozenDict.deep_freeze(value)

    @property
    def parsed(self) -> tuple:
        return self.parse(_thaw(self.value)) if self.value is not None else ()


class NixImageUsersField(_AccountsField):
    alias = "users"
    example = '`users={"app": 1000}`'
    help = help_text(
        """
        Users to add to the image's `/etc/passwd` (with `/etc/group`, `/etc/nsswitch.conf` and a
        home directory each), beside `root` and `nobody`. A user maps to its uid, or to a dict
        with `uid`, `gid` (default: the uid), `home` (default `/home/NAME`), `shell` (default
        `/bin/sh`) and `groups`. A group named after the user is made for its gid.
        Example: `users={"app": 1000, "worker": {"uid": 1001, "groups": ["app"]}}`.
        """
    )

    @staticmethod
    def parse(raw: Any) -> tuple:
        return parse_users(raw)


class NixImageGroupsField(_AccountsField):
    alias = "groups"
    example = '`groups={"staff": 2000}`'
    help = 'Extra groups for `/etc/group`, name to gid. Example: `groups={"staff": 2000}`.'

    @staticmethod
    def parse(raw: Any) -> tuple:
        return parse_groups(raw)


class NixImageDirectoriesField(_AccountsField):
    alias = "directories"
    example = '`directories={"/data": {"owner": "app", "mode": "0750"}}`'
    help = help_text(
        """
        Directories to create in the image, each owned by a user (name or uid) and group, with a
        mode (octal string; the sticky bit is allowed, setuid and setgid are not). Shorthand: a
        path to an owner. Example:
        `directories={"/data": "app", "/var/cache/app": {"owner": "app", "group": "app", "mode": "0750"}}`.
        """
    )

    @staticmethod
    def parse(raw: Any) -> tuple:
        return parse_directories(raw)


class NixImageTmpDirField(BoolField):
    alias = "tmp_dir"
    default = True
    help = "Whether the image has a world-writable, sticky `/tmp` (mode 1777). Example: `tmp_dir=False`."


class NixImageCaCertificatesField(BoolField):
    alias = "ca_certificates"
    default = False
    help = help_text(
        """
        Put a CA bundle in the image: [nix-docker].cacert_package joins the closure,
        `/etc/ssl/certs/ca-certificates.crt` and `ca-bundle.crt` link to it, and `SSL_CERT_FILE`
        points at it (unless `env` sets it). Example: `ca_certificates=True`.
        """
    )


class NixImageUsrBinEnvField(BoolField):
    alias = "usr_bin_env"
    default = False
    help = help_text(
        """
        Link `/usr/bin/env` to the `bin/env` of the first package that has one, so `#!/usr/bin/env`
        shebangs (a PEX's, say) work. Example: `usr_bin_env=True`.
        """
    )


class NixImageBinShField(BoolField):
    alias = "bin_sh"
    default = False
    help = "Link `/bin/sh` to the `bin/sh` of the first package that has one. Example: `bin_sh=True`."


class NixImageRegistriesField(StringSequenceField):
    alias = "registries"
    help = help_text(
        """
        Where `pants publish` pushes the image: registry addresses (`registry.example.com:5000`)
        or `@alias`es of [nix-docker].registries. Left out: the registries marked `default` there.
        Each image tag is pushed as `ADDRESS/REPOSITORY:TAG`. Example: `registries=["@ci"]`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for registry in value or ():
            if not registry or "/" in registry.lstrip("@") or registry.startswith(("http://", "https://")):
                raise _invalid(
                    cls,
                    address,
                    registry,
                    "a registry is a host[:port] or an @alias",
                    "For example 'registry.example.com:5000' or '@ci'.",
                )
        return value


class NixImageSkipPushField(BoolField):
    alias = "skip_push"
    default = False
    help = "If true, `pants publish` skips this image. Example: `skip_push=True`."


class NixImageOutputFormatField(StringField):
    alias = "output_format"
    valid_choices = ("archive", "layout")
    default = "archive"
    value: str
    help = help_text(
        """
        What `pants package` writes. `archive` (the default): one `.tar` that is both an OCI
        image layout and a `docker save` archive, for `podman load`, `docker load` and
        `skopeo copy oci-archive:`. `layout`: an OCI image layout directory, for
        `skopeo copy oci:DIR:TAG ...` and `umoci unpack --image DIR:TAG`; its blobs are the
        files Pants already holds, linked rather than copied, so it is much cheaper when many
        images share layers or when the next step is a push. Example: `output_format="layout"`.
        """
    )


class NixImageOutputPathField(OutputPathField):
    help = help_text(
        """
        Where the image goes under `dist/`. Defaults to `path.to.dir/TARGET_NAME.tar`
        (`examples.hello/image.tar`), or `path.to.dir/TARGET_NAME` for `output_format="layout"`.
        Example: `output_path="images/hello.tar"`.
        """
    )


class NixImagePlatformsField(StringSequenceField):
    alias = "platforms"
    help = help_text(
        """
        The Nix systems to build the image for. Left out, the image is for this machine's system
        (its Nix builds the packages), as one image manifest. Two or more give one OCI image
        index with an image per platform, its layers stored once where the platforms share them,
        published under one tag: a pull on each machine gets its own.

        Each platform's packages are its own: `${system}` in a `packages` entry becomes the
        system (`nixpkgs#legacyPackages.${system}.hello`), and a `.nix` file that is a function
        taking `system` is called with it, like `nix-build FILE --argstr system SYSTEM`
        (`import <nixpkgs> { system = ...; }` in the file gives nixpkgs for it). OCI names:
        `x86_64-linux` is linux/amd64, `aarch64-linux` linux/arm64/v8, `armv7l-linux`
        linux/arm/v7, `armv6l-linux` linux/arm/v6, `i686-linux` linux/386, `riscv64-linux`,
        `powerpc64le-linux` (ppc64le), `s390x-linux`. Building for another system needs a Nix that
        can: a remote builder, binfmt emulation (`extra-platforms`), or cross-compiled packages.
        Example: `platforms=["x86_64-linux", "aarch64-linux"]`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None
        if not value:
            raise _invalid(cls, address, [], "it is empty", "Leave it out for this machine's system, or list systems.")
        for system in value:
            try:
                platform_of(system)
            except PlatformError as e:
                raise _invalid(
                    cls, address, system, str(e), 'For example `platforms=["x86_64-linux", "aarch64-linux"]`.'
                )
        repeated = sorted({system for system in value if value.count(system) > 1})
        if repeated:
            raise _invalid(cls, address, list(value), f"{', '.join(repeated)} is listed twice", "List each once.")
        return value


class NixImageForbiddenReferencesField(StringSequenceField):
    alias = "forbidden_references"
    help = help_text(
        """
        Store path names the image must not contain, as shell patterns matched against the part
        after the hash (or, starting with `/`, against the whole path). A match fails the build
        and shows the reference chain that pulled the path in, like `nix why-depends`.
        Example: `forbidden_references=["*-gcc-*", "ghc-*", "*-dev"]`.
        """
    )


class NixImageMaxImageSizeField(Field):
    alias = "max_image_size"
    default = None
    help = help_text(
        """
        A budget for the image: the build fails when config, manifest and layers (compressed, as a
        registry stores them) add up to more, and shows the largest contributors. Bytes, or a
        string with a unit (B, kB, MB, GB, KiB, MiB, GiB). Example: `max_image_size="60MB"`.
        """
    )
    value: Optional[int]

    @classmethod
    def compute_value(cls, raw_value: Optional[Any], address: Address) -> Optional[int]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise _invalid(
                cls,
                address,
                value,
                'it must be a number of bytes or a string like "60MB"',
                'Example: `max_image_size="60MB"`.',
            )
        try:
            size = parse_size(value)
        except ValueError as e:
            raise _invalid(cls, address, value, str(e), 'Example: `max_image_size="60MB"`.')
        if size <= 0:
            raise _invalid(cls, address, value, "it must be positive", 'Example: `max_image_size="60MB"`.')
        return size


class NixImageClosureGraphField(BoolField):
    alias = "closure_graph"
    default = False
    help = help_text(
        """
        Also write the image's closure as a Graphviz graph next to it, `NAME.closure.dot`, with
        each store path's NAR size, and `NAME.closure.svg` when Graphviz's `dot` is installed.
        Example: `closure_graph=True`.
        """
    )


class NixImageBaseImageField(StringField):
    alias = "base_image"
    help = help_text(
        """
        An image to build on. Its layers are kept verbatim below the image's own, its config's
        `Env` and `Labels` merge with the image's (the image wins), and its `Entrypoint`, `Cmd`,
        `WorkingDir` and `User` apply where the image sets none. Its layers count towards
        `max_layers`.

        Either a path in the repository (relative to this BUILD file, or `//`-rooted) to an OCI
        layout directory, an OCI archive (such as another `nix_docker_image`'s `.tar`) or a
        `docker save` archive, optionally pinned as `PATH@sha256:DIGEST`; or a registry image
        pinned by digest, `docker://HOST/REPOSITORY[:TAG]@sha256:DIGEST`, pulled once and cached
        by its digest (credentials and CAs as for `pants publish`).

        Example: `base_image="docker://registry.example.com/base/debian@sha256:5d2a..."`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None:
            try:
                parse_base_image(value, address.spec_path)
            except BaseImageError as e:
                raise InvalidFieldException(
                    f"The {cls.alias!r} field in target {address} has an invalid value {value!r}: {e}."
                )
        return value


@dataclass(frozen=True)
class NixImageFields(FieldSet):
    """Every field of a `nix_docker_image`, declared once: the target type's fields are these, and
    the goals read an image from them (`util_rules/image_plan.py: NixImageRequest`)."""

    required_fields = (NixImagePackagesField,)

    packages: NixImagePackagesField
    dependencies: NixImageDependenciesField
    base_image: NixImageBaseImageField
    forbidden_references: NixImageForbiddenReferencesField
    max_image_size: NixImageMaxImageSizeField
    platforms: NixImagePlatformsField
    closure_graph: NixImageClosureGraphField
    entrypoint: NixImageEntrypointField
    cmd: NixImageCmdField
    env: NixImageEnvField
    working_dir: NixImageWorkingDirField
    exposed_ports: NixImageExposedPortsField
    volumes: NixImageVolumesField
    user: NixImageUserField
    labels: NixImageLabelsField
    repository: NixImageRepositoryField
    image_tags: NixImageTagsField
    max_layers: NixImageMaxLayersField
    layering: NixImageLayeringField
    created: NixImageCreatedField
    app_dir: NixImageAppDirField
    paths_to_link: NixImagePathsToLinkField
    users: NixImageUsersField
    groups: NixImageGroupsField
    directories: NixImageDirectoriesField
    tmp_dir: NixImageTmpDirField
    ca_certificates: NixImageCaCertificatesField
    usr_bin_env: NixImageUsrBinEnvField
    bin_sh: NixImageBinShField
    output_format: NixImageOutputFormatField
    output_path: NixImageOutputPathField
    registries: NixImageRegistriesField
    skip_push: NixImageSkipPushField


class NixDockerImageTarget(Target):
    alias = "nix_docker_image"
    core_fields = (*COMMON_TARGET_FIELDS, *NixImageFields.fields.values())
    help = help_text(
        """
        A reproducible, layered OCI image of the runtime closure of Nix packages.

        `pants package` realises `packages`, splits their runtime closure into layers (each
        built once per set of store paths and cached by Pants), and writes one `.tar` that is
        both an OCI image layout and a docker archive: `skopeo copy oci-archive:...`,
        `podman load -i` and `docker load -i` all read it.
        """
    )


# --- Nix sources: the `.nix` files (and flake locks) that images are evaluated from ---------------

NIX_SOURCE_EXTENSIONS = (".nix", ".lock")


class NixSourceField(SingleSourceField):
    expected_file_extensions = NIX_SOURCE_EXTENSIONS
    help = "A `.nix` file, or a flake's `flake.lock`."


class NixSourceDependenciesField(Dependencies):
    help = help_text(
        """
        Addresses this file depends on. Pants infers the files a `.nix` file names by path literal
        (`import ./lib.nix`, `callPackage ./pkgs/foo.nix {}`, `./patches`, `builtins.path { path =
        ./x; }`) with Nix's own parser; list here what it cannot see (a path built from a string,
        for example). Example: `dependencies=["./patches:files"]`.
        """
    )


class NixSourceTarget(Target):
    alias = "nix_source"
    core_fields = (*COMMON_TARGET_FIELDS, NixSourceDependenciesField, NixSourceField)
    help = help_text(
        """
        One Nix file. `nix_docker_image` targets depend on the files their `packages` name, and
        files on the files they import, so `pants --changed-since=... --changed-dependents=transitive
        package` rebuilds exactly the images whose Nix inputs changed.
        """
    )


class NixSourcesGeneratingSourcesField(MultipleSourcesField):
    default = ("*.nix", "flake.lock")
    expected_file_extensions = NIX_SOURCE_EXTENSIONS
    help = help_text(
        """
        The Nix files of this directory, one `nix_source` target each. Example:
        `sources=["*.nix", "!shell.nix"]`.
        """
    )


class NixSourcesGeneratorTarget(TargetFilesGenerator):
    alias = "nix_sources"
    core_fields = (*COMMON_TARGET_FIELDS, NixSourcesGeneratingSourcesField)
    generated_target_cls = NixSourceTarget
    copied_fields = COMMON_TARGET_FIELDS
    moved_fields = (NixSourceDependenciesField,)
    help = "A `nix_source` target for each Nix file (and `flake.lock`) in a directory; `pants tailor` adds them."


# --- Image tests: checks of a built image, run by `pants test` ---------------------------------------


class NixImageTestImageField(StringField):
    alias = "image"
    required = True
    help = help_text(
        """
        The `nix_docker_image` target to check, as an address: `image=":image"`. The test runs
        against the image built for this machine's platform, and again whenever it changes.
        """
    )


class _CheckField(Field):
    """Checks written as plain lists and dicts in the BUILD file, kept as written and validated by
    `parse` (from `oci/image_checks.py`), which also gives the typed checks (`parsed`)."""

    default = None
    example: ClassVar[str]
    value: Optional[Any]

    @staticmethod
    def parse(raw: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def compute_value(cls, raw_value: Optional[Any], address: Address) -> Optional[Any]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None
        try:
            cls.parse(value)
        except CheckSpecError as e:
            raise _invalid(cls, address, value, str(e), f"For example {cls.example}.")
        return (
            FrozenDict.deep_freeze(value)
            if isinstance(value, dict)
            else tuple(FrozenDict.deep_freeze(v) for v in value)
        )

    @property
    def parsed(self) -> Any:
        return self.parse(_thaw(self.value)) if self.value is not None else self.parse(self.empty())

    @staticmethod
    def empty() -> Any:
        return []


class NixImageTestCommandsField(_CheckField):
    alias = "commands"
    example = '`commands=[{"argv": ["/bin/hello"], "stdout_contains": "Hello"}]`'
    help = help_text(
        """
        Commands run in the image (with runc, from the unpacked image, in its own network
        namespace), each a dict: `argv` (default: the image's own entrypoint and cmd),
        `exit_code` (default 0), `stdout`/`stderr` (equal to, trailing newlines aside),
        `stdout_contains`/`stderr_contains`,
        `stdout_matches`/`stderr_matches` (a regex searched for), `env` (added to the image's),
        `user` ('UID[:GID]'), `timeout` (seconds, default 60), `name`. Example:
        `commands=[{"argv": ["/bin/hello"], "stdout": "Hello, world!"}, {"argv": ["/bin/id", "-u"], "stdout": "1000"}]`.
        """
    )

    @staticmethod
    def parse(raw: Any) -> Any:
        return parse_commands(raw)


class NixImageTestFilesField(_CheckField):
    alias = "files"
    example = '`files=[{"path": "/data", "type": "directory", "owner": "1000:1000", "mode": "0750"}]`'
    help = help_text(
        """
        Paths of the image's root filesystem (all layers, whiteouts applied), each a dict: `path`
        (required), `exists` (default True), `type` (file, directory or symlink), `target` (of a
        symlink), `mode` ('0755'), `owner` ('UID:GID'), `contains` (text in the file). Read from
        the layers, no runtime needed. Example:
        `files=[{"path": "/data", "type": "directory", "owner": "1000:1000"}, {"path": "/root/.ssh", "exists": False}]`.
        """
    )

    @staticmethod
    def parse(raw: Any) -> Any:
        return parse_files(raw)


class NixImageTestConfigField(_CheckField):
    alias = "config"
    example = '`config={"user": "app", "exposed_ports": ["8080/tcp"], "env": {"PORT": "8080"}}`'
    help = help_text(
        """
        The image config's values: `entrypoint`, `cmd`, `user`, `working_dir`, `exposed_ports`
        (like '8080/tcp') equal to these; `env`, `labels`: these entries present with these
        values. Example: `config={"user": "app", "working_dir": "/data", "env": {"PORT": "8080"}}`.
        """
    )

    @staticmethod
    def parse(raw: Any) -> Any:
        return parse_config(raw)

    @staticmethod
    def empty() -> Any:
        return None


class NixImageTestServiceField(_CheckField):
    alias = "service"
    example = '`service={"port": 8080, "http_path": "/", "body_contains": "hello"}`'
    help = help_text(
        """
        Start the image with its own entrypoint and wait for it to answer on `port` (inside the
        container's network namespace): a TCP connection, or with `http_path` an HTTP GET that
        answers `status` (default 200) with `body_contains` in its body, within `timeout`
        seconds (default 30). Then it is stopped with SIGTERM (SIGKILL after 10 s). Example:
        `service={"port": 8080, "http_path": "/", "status": 200, "body_contains": "hello"}`.
        """
    )

    @staticmethod
    def parse(raw: Any) -> Any:
        return parse_service(raw)

    @staticmethod
    def empty() -> Any:
        return None


class NixImageTestForbiddenStorePathsField(StringSequenceField):
    alias = "forbidden_store_paths"
    help = help_text(
        """
        Globs that no store path of the image may match (against `/nix/store/HASH-NAME` or
        `HASH-NAME`). Example: `forbidden_store_paths=["*-gcc-*", "*-perl-*"]`.
        """
    )


class NixImageTestAllowRootField(BoolField):
    alias = "allow_root"
    default = False
    help = help_text(
        """
        Whether the image may run as root. By default the test fails when the image's `user` is
        unset (root) or uid 0, or a command runs as uid 0. Example: `allow_root=True`.
        """
    )


class NixImageTestAllowSetuidField(BoolField):
    alias = "allow_setuid"
    default = False
    help = help_text(
        """
        Whether the image may hold setuid or setgid files. By default the test fails naming any
        it finds in the image's root filesystem. Example: `allow_setuid=True`.
        """
    )


class NixImageTestTimeoutField(TestTimeoutField):
    help = "Seconds the whole test may take (all checks). Example: `timeout=300`."


class NixImageTestTarget(Target):
    alias = "nix_docker_image_test"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        NixImageTestImageField,
        NixImageTestCommandsField,
        NixImageTestFilesField,
        NixImageTestConfigField,
        NixImageTestServiceField,
        NixImageTestForbiddenStorePathsField,
        NixImageTestAllowRootField,
        NixImageTestAllowSetuidField,
        NixImageTestTimeoutField,
    )
    help = help_text(
        """
        Checks of a built `nix_docker_image`, run by `pants test`: its config, files of its root
        filesystem, commands run in it, a service it starts, its store paths and its user. The
        test is a process keyed by the image's bytes and the checks: an unchanged image is not
        tested again (locally or through a remote cache), and each check is a case of the JUnit
        report.
        """
    )


def target_types():
    return [NixDockerImageTarget, NixSourceTarget, NixSourcesGeneratorTarget, NixImageTestTarget]
