#!/bin/bash
# Keycloak's entrypoint in docker-compose.yml: exports each client secret the realm file names
# as ${REALM_SECRET_<CLIENT>} from the compose secret /run/secrets/<client> (a file of
# deploy/compose/secrets/, written by `controlplane stack realm --secrets-dir`), and the
# administrator's password, then runs kc.sh with the service's command. A missing or empty
# secret stops the start: Keycloak would otherwise keep the placeholder text as the secret.
set -euo pipefail
realm_file=/opt/keycloak/data/import/inventory-realm.json
text=$(<"$realm_file")
pattern='\$\{(REALM_SECRET_[A-Z0-9_]+)\}'
while [[ $text =~ $pattern ]]; do
    variable=${BASH_REMATCH[1]}
    text=${text//"${BASH_REMATCH[0]}"/}
    client=${variable#REALM_SECRET_}
    client=${client,,}
    client=${client//_/-}
    secret=""
    [[ -r /run/secrets/$client ]] && IFS= read -r secret <"/run/secrets/$client" || true
    if [[ -z $secret ]]; then
        echo "no secret for client $client in /run/secrets/$client: run" \
            "controlplane stack realm ... --secrets-dir deploy/compose/secrets" >&2
        exit 1
    fi
    export "$variable=$secret"
done
IFS= read -r KC_BOOTSTRAP_ADMIN_PASSWORD </run/secrets/keycloak-admin || true
if [[ -z ${KC_BOOTSTRAP_ADMIN_PASSWORD:-} ]]; then
    echo "no administrator password in /run/secrets/keycloak-admin" >&2
    exit 1
fi
export KC_BOOTSTRAP_ADMIN_PASSWORD
exec /opt/keycloak/bin/kc.sh "$@"
