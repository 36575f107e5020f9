from monorepo_services.common import serve


def describe() -> dict:
    return {"role": "payments"}


def main() -> None:
    serve("payments", describe)
