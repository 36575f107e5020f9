from monorepo_services.common import serve


def describe() -> dict:
    return {"role": "catalog"}


def main() -> None:
    serve("catalog", describe)
