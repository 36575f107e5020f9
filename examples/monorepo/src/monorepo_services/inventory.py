from monorepo_services.common import serve


def describe() -> dict:
    return {"role": "inventory"}


def main() -> None:
    serve("inventory", describe)
