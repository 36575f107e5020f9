"""What an image may be, checked while it is built: each failure names the target, the field and
the fix, and stops the build before anything reaches dist/."""

from __future__ import annotations

from typing import Mapping, Sequence

from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from pants_backend_nix_docker.nix.closure import Closure
from pants_backend_nix_docker.nix.references import CONFIG_FIELDS, config_references, forbidden_paths, format_chain
from pants_backend_nix_docker.nix.report import ImageReport, largest_contributors
from pants_backend_nix_docker.nix.sizes import human_size
from pants_backend_nix_docker.oci.image_json import ContainerConfig
from pants_backend_nix_docker.target_types import (
    NixImageForbiddenReferencesField,
    NixImageMaxImageSizeField,
    NixImageMaxLayersField,
)


def check_forbidden(
    address: Address, closure: Closure, chains: Mapping[str, tuple[str, ...]], patterns: Sequence[str]
) -> None:
    found = forbidden_paths(closure, chains, patterns)
    if found:
        lines = [f"  {path} matches {pattern!r}, pulled in by: {format_chain(chain)}" for pattern, path, chain in found]
        raise InvalidFieldException(
            f"The image of target {address} contains store paths its {NixImageForbiddenReferencesField.alias!r} "
            f"field forbids:\n" + "\n".join(lines) + "\nDrop the package (or the reference) that pulls them in, "
            "or remove the pattern from `forbidden_references`."
        )


def check_config_references(address: Address, container: ContainerConfig, closure: Closure) -> None:
    """A store path the image's own config names must be in the image, or the image is broken."""
    for path, places in config_references(container.to_json()).items():
        if path not in closure.paths:
            field = CONFIG_FIELDS[places[0].split()[0]]
            raise InvalidFieldException(
                f"The {field!r} field in target {address} names {path} ({', '.join(places)}), which is not in the "
                "image: "
                f"no package's closure holds it. Add it to `packages`, or write `${{pkgs.NAME}}` for a package's path."
            )


def check_layer_budget(
    address: Address, max_layers: int, base_layers: int, own_layers: int, store_paths_to_layer: bool
) -> int:
    """How many layers the store paths may have: `max_layers` less the base's and the image's own."""
    budget = max_layers - base_layers - own_layers
    if budget < 1 and store_paths_to_layer:
        raise InvalidFieldException(
            f"The {NixImageMaxLayersField.alias!r} field in target {address} is {max_layers}, but the base image has "
            f"{base_layers} layers and the image needs {own_layers} of its own plus at least one for its store "
            f"paths. Set `max_layers` to at least {base_layers + own_layers + 1}."
        )
    return budget


def check_size(address: Address, report: ImageReport, max_image_size: int | None) -> None:
    size = report.size
    if max_image_size is not None and size > max_image_size:
        lines = "\n".join(f"  {line}" for line in largest_contributors(report))
        raise InvalidFieldException(
            f"The image of target {address} is {human_size(size)} ({size} bytes), over its "
            f"{NixImageMaxImageSizeField.alias!r} of {human_size(max_image_size)} ({max_image_size} bytes). "
            f"The largest contributors:\n{lines}\nMake the closure smaller, or raise `max_image_size`."
        )
