# Sourced (not run) by ./pants and the install scripts beside this file.
#
# pip reads the machine's configuration (/etc/pip.conf, /etc/xdg/pip/pip.conf, ~/.config/pip,
# PIP_* variables) even when run with --isolated. A site-wide `constraint` there makes the pip
# inside pex crash on locked downloads ("AssertionError"), and find-links or index entries change
# what gets resolved. pip skips every configuration file when PIP_CONFIG_FILE is os.devnull, so
# what this repo installs comes from PyPI and its lockfiles only. pants.toml passes the same
# setting to the processes Pants runs ([subprocess-environment]).
for name in $(compgen -e); do
  [[ "$name" == PIP_* ]] && unset "$name"
done
export PIP_CONFIG_FILE=/dev/null

# Ignoring the configuration also drops any `cert =` it had. The installs trust the system's CA
# bundle, which holds whatever proxy CA the machine trusts, by passing it as `--cert` (pex runs its
# pip --isolated, which ignores PIP_CERT). pants.toml's [GLOBAL].ca_certs_path does the same for
# pex inside Pants.
pip_cert_args=()
if [[ -r /etc/ssl/certs/ca-certificates.crt ]]; then pip_cert_args=(--cert /etc/ssl/certs/ca-certificates.crt); fi
