from monorepo_services.common import serve


def describe() -> dict:
    return {"role": "notifications"}


def main() -> None:
    serve("notifications", describe)
