from monorepo_services.common import serve


def describe() -> dict:
    return {"role": "shipping"}


def main() -> None:
    serve("shipping", describe)
