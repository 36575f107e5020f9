from __future__ import annotations

from enum import Enum
from typing import Any

from pants.option.errors import OptionsError
from pants.option.option_types import BoolOption, DictOption, EnumOption, IntOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import softwrap

from pants_backend_nix_docker.oci import compression, layering
from pants_backend_nix_docker.oci.compression import (
    DEFAULT_LEVELS,
    GZIP,
    ISAL,
    LIBDEFLATE,
    ZSTD,
    CodecError,
    LayerCodec,
)
from pants_backend_nix_docker.oci.signing import Signing, SigningError


class LayerCompression(Enum):
    gzip = compression.GZIP
    zstd = compression.ZSTD


class GzipEncoder(Enum):
    libdeflate = LIBDEFLATE
    isal = ISAL


class LayeringStrategy(Enum):
    popularity = layering.POPULARITY
    size_aware = layering.SIZE_AWARE


class ImageRuntime(Enum):
    auto = "auto"
    podman = "podman"
    docker = "docker"


class NixDockerSubsystem(Subsystem):
    options_scope = "nix-docker"
    help = "Defaults for every `nix_docker_image` target."

    compression = EnumOption(
        default=LayerCompression.gzip,
        help=softwrap(
            """
            How layers are compressed. `gzip` is what every registry and runtime reads; `zstd`
            gives smaller layers for runtimes that read it (containerd 1.5+, podman 3+).
            """
        ),
    )
    gzip_encoder = EnumOption(
        default=GzipEncoder.libdeflate,
        help=softwrap(
            """
            What writes gzip layers. `libdeflate` (the default): layers a little smaller than
            `gzip -6` or `pigz -6` make, at about 90 MB/s per core (zlib's level 6 manages about
            25). `isal` (ISA-L): about four times faster still, for layers about 13% larger; for
            when build time matters more than the bytes every deploy pulls. Both give the same
            bytes on every x86-64 machine (ISA-L on any CPU with SSE4.2), so each choice has one
            digest per image. Changing it changes every gzip layer's digest.
            """
        ),
    )
    gzip_level = IntOption(
        default=None,
        help=softwrap(
            f"""
            The gzip encoder's level: libdeflate 1 to 12 (default {DEFAULT_LEVELS[LIBDEFLATE]}, the
            fastest no larger than `pigz -6`; 6 is 0.6% smaller for about 20% more time, 9 and up
            much slower for about 1% less), ISA-L 0 to 2 (default {DEFAULT_LEVELS[ISAL]}; its level
            3 is not offered because its bytes differ between CPUs).
            """
        ),
    )
    zstd_level = IntOption(default=3, help="zstd level for zstd layers, 1 to 19.")
    layering = EnumOption(
        default=LayeringStrategy.popularity,
        help=softwrap(
            """
            How images split their closure into layers when it has more paths than `max_layers`
            allows (a target's `layering` field overrides it). `popularity`: the most shared paths
            get a layer each, the rest share one. `size-aware`: neighbouring small layers merge
            until the budget fits, so no layer becomes a large catch-all and a package bump
            re-ships about that package's bytes.
            """
        ),
    )
    layer_buckets = IntOption(
        default=2,
        advanced=True,
        help=softwrap(
            """
            How many processes build an image's small store layers (a layer goes to one by a hash
            of its store paths). A process costs about 0.1 s whatever it builds and compresses its
            layers on every core, so fewer, larger processes build faster (2 rather than 4 saved
            about 0.2 s of a 3.4 s cold build of the benchmark's closure, as a mean of six runs
            each); more, smaller ones rebuild less when one layer changes.
            """
        ),
    )
    layer_alone_above = IntOption(
        default=64_000_000,
        advanced=True,
        help="NAR bytes above which a store layer is built by a process of its own.",
    )
    remote_cache_speculation_delay = IntOption(
        default=2000,
        advanced=True,
        help=softwrap(
            """
            With a remote cache, how many milliseconds a layer process waits for the cache's answer
            before it starts building locally too. Fetching a layer is cheaper than building it,
            so the default lets a hit win; on a miss the build starts up to this much later.
            """
        ),
    )
    registries = DictOption[Any](
        help=softwrap(
            """
            Registries `pants publish` can push to, by alias:
            `{"ci": {"address": "registry.example.com:5000", "default": true}}`. Keys of an entry:
            `address` (host[:port], required), `default` (used by images that name no
            registries), `skip_push` (never push there), `tls_verify` (default true; false for a
            plain-HTTP registry on localhost), `cert_dir` (a directory whose `*.crt` files are CAs
            to trust for this registry, like skopeo's `--cert-dir`; without it the system's CAs
            and `/etc/containers/certs.d/HOST:PORT/` apply). Base images pulled from a registry
            use the entry whose address matches their host. Credentials are skopeo's:
            `REGISTRY_AUTH_FILE`, `~/.docker/config.json` or podman's `auth.json`; they never pass
            through Pants.
            """
        ),
    )
    publish_sbom = BoolOption(
        default=True,
        help=softwrap(
            """
            Whether `pants publish` pushes each image's SBOM with it, as an OCI 1.1 artifact whose
            `subject` is the image: found by the registry's referrers API, or, on a registry
            without one, through the index tagged `sha256-<hex of the image's digest>` (the
            referrers tag schema, which publishing keeps up to date). Turn it off for a registry
            that refuses artifacts.
            """
        ),
    )
    sign_by = StrOption(
        default=None,
        help=softwrap(
            """
            The fingerprint of a GPG key that `pants publish` signs every pushed image with
            (skopeo's `--sign-by`; GNUPGHOME chooses the keyring). The signature goes where
            `registries.d` names the registry's `lookaside-staging`, and a `policy.json` with a
            `signedBy` requirement, reading `lookaside`, verifies pulls. Example:
            `sign_by = "4867369E32D35D70A03DE6A40E0034C2F403E715"`.
            """
        ),
    )
    sign_by_sigstore_private_key = StrOption(
        default=None,
        help=softwrap(
            """
            The path of a sigstore private key (cosign's encrypted format) that `pants publish`
            signs every pushed image with; the signature is stored in the registry when
            `registries.d` sets `use-sigstore-attachments: true` for it. Debian's skopeo is built
            without sigstore signing: there, use `sign_by`. Example: `"/secrets/cosign.key"`.
            """
        ),
    )
    sign_passphrase_file = StrOption(
        default=None,
        help=softwrap(
            """
            The path of a file holding the signing key's passphrase (skopeo's
            `--sign-passphrase-file`). Pants never reads it, nor the key: only their paths are
            passed to skopeo, so neither enters a cache or a log. Example: `"/secrets/passphrase"`.
            """
        ),
    )
    registries_d = StrOption(
        default=None,
        help=softwrap(
            """
            The `registries.d` directory skopeo reads when publishing (where signatures are
            written: `lookaside-staging`, `use-sigstore-attachments`); by default skopeo's own,
            `~/.config/containers/registries.d` or `/etc/containers/registries.d`. Example:
            `"%(buildroot)s/build-support/registries.d"`.
            """
        ),
    )
    runtime = EnumOption(
        default=ImageRuntime.auto,
        help=softwrap(
            """
            The engine `pants run` loads images into: `auto` (docker when a docker daemon
            answers, else podman), `podman` or `docker`.
            """
        ),
    )
    run_args = StrListOption(
        default=["--rm"],
        help=softwrap(
            """
            Arguments of `podman run` (or `docker run`) for `pants run`, before the image name
            (arguments after `--` go to the image). Hosts without cgroup-aware runtimes or bridge
            networking need more, e.g. `["--rm", "--runtime=runc", "--network=host"]`.
            """
        ),
    )
    run_platform = StrOption(
        default=None,
        help=softwrap(
            """
            Which platform of a multi-platform image `pants run` runs, as a Nix system
            (`aarch64-linux`); by default this machine's. Another machine's image runs under
            emulation: `./pants` registers qemu's binfmt handler for aarch64.
            """
        ),
    )
    cacert_package = StrOption(
        default="nixpkgs#cacert",
        help=softwrap(
            """
            The installable that `ca_certificates=True` adds to an image; it must hold
            `etc/ssl/certs/ca-bundle.crt` (nixpkgs' `cacert` does). A `FILE.nix#attr` form is
            relative to the build root.
            """
        ),
    )

    @property
    def signing(self) -> Signing:
        """How publishing signs; raises `OptionsError` naming the options when they disagree."""
        try:
            return Signing.of(self.sign_by, self.sign_by_sigstore_private_key, self.sign_passphrase_file)
        except SigningError as e:
            raise OptionsError(f"[{self.options_scope}]: {e}.") from e

    @property
    def codec(self) -> LayerCodec:
        """The layers' codec; raises `OptionsError` naming the option when a level does not exist."""
        gzip = self.compression == LayerCompression.gzip
        option = "gzip_level" if gzip else "zstd_level"
        try:
            if gzip:
                return LayerCodec.of(GZIP, self.gzip_encoder.value, self.gzip_level)
            return LayerCodec.of(ZSTD, level=self.zstd_level)
        except CodecError as e:
            raise OptionsError(
                f"[{self.options_scope}].{option} is {self.gzip_level if gzip else self.zstd_level}: {e}. Set it in "
                f"pants.toml or with --{self.options_scope}-{option.replace('_', '-')}."
            ) from e
