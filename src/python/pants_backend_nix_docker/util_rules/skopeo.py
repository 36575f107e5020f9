"""What skopeo, which pulls base images and publishes images, reads from the user's environment."""

# Where credentials, signing keyrings and its configuration are (file paths, never a secret), and
# PATH for docker-credential-* helpers.
SKOPEO_ENV = ("HOME", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "GNUPGHOME", "PATH")
