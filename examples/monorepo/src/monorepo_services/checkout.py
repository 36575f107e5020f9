from monorepo_services.common import serve


def describe() -> dict:
    return {"role": "checkout"}


def main() -> None:
    serve("checkout", describe)
