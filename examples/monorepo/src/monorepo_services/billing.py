from monorepo_services.common import serve


def describe() -> dict:
    return {"role": "billing"}


def main() -> None:
    serve("billing", describe)
