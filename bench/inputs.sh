# shellcheck shell=bash
# shellcheck disable=SC2154 # mxgw, certs, port_mxgw, port_sim, root: set by the caller
# Shared by bench/run.sh and bench/ab.sh (sourced, not run): what every benchmark run needs.
json_num() { grep -o "\"$1\":[0-9.]*" | head -n 1 | cut -d: -f2; }  # json_num FIELD < JSON
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

client() {  # client PARTNER: the mTLS options of that partner's certificate (in $certs)
  echo "--cert $certs/$1.pem --key $certs/$1.key --ca $certs/ca.pem"
}

wait_https() {  # wait_https URL PARTNER: until the URL answers 200 (or 10 s), asked with $mxgw
  local _
  for _ in $(seq 1 100); do
    # shellcheck disable=SC2046 # client's options are separate words
    if "$mxgw" send --method GET --url "$1" $(client "$2") > /dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "bench: $1 did not come up" >&2
  return 1
}

# bench_inputs MXGW DIR: in DIR, a development CA with a server certificate and the partner
# certificates of vn-gialai and kh-stungtreng (DIR/certs), a data key for encryption at rest
# (DIR/certs/store-key.hex), the key of the persons' digests (DIR/certs/match-key.hex), the key
# message ids are derived under (DIR/certs/id-key.hex), and the
# request bodies: the shipped examples with a {{uuid}} placeholder that mxgw-loadgen replaces by a
# fresh UUID per request (the gateway deduplicates by id; KH-CNP ids derive from msg_no):
# DIR/canonical.json (a hotline tip) and DIR/kh-cnp.json (the KH-CNP victim referral). The UUID
# stands in for one of the person's given names too, so each message names another person, as
# real traffic mostly does (the persons' digests are then spread over their index, not appended
# to one place of it). Run from the checkout's top folder.
bench_inputs() {
  local mxgw=$1 dir=$2 partner
  "$mxgw" certs init --dir "$dir/certs" > /dev/null
  for partner in vn-gialai kh-stungtreng; do
    "$mxgw" certs issue --dir "$dir/certs" --partner "$partner" --out "$dir/certs/$partner" > /dev/null
  done
  "$mxgw" keys generate --out "$dir/certs/store-key.hex" > /dev/null
  "$mxgw" keys generate --out "$dir/certs/match-key.hex" > /dev/null
  "$mxgw" keys generate --out "$dir/certs/id-key.hex" > /dev/null
  sed 's/"id": "[0-9a-f-]*"/"id": "{{uuid}}"/; s/"Dụ"/"{{uuid}}"/' config/examples/hotline.tip.json \
    > "$dir/canonical.json"
  sed 's/"msg_no": "[^"]*"/"msg_no": "RTK-{{uuid}}"/; s/"given_name_lat": "THI HOA"/"given_name_lat": "THI {{uuid}}"/' \
    tests/adapters/golden/kh-cnp/victim-referral.kh.json > "$dir/kh-cnp.json"
  [ "$(grep -o '{{uuid}}' "$dir/canonical.json" | wc -l)" = 2 ] &&
    [ "$(grep -o '{{uuid}}' "$dir/kh-cnp.json" | wc -l)" = 2 ]
}

# gateway_config DIR DELIVERY(true|false) MAX_CONNECTIONS [STORE [CONFIG_ROOT]]: a configuration
# in DIR, checked with $mxgw; the listener on $port_mxgw, the recipient (a partner-sim) on
# $port_sim, certificates from $certs, schemas and code tables from CONFIG_ROOT/config (default:
# $root, this checkout).
# Default store settings (SQLite: WAL, synchronous=FULL, group commit; postgres:
# synchronous_commit=on, group commit, a schema of its own per DIR), encryption at rest and the
# persons' digests as shipped; one event-loop thread (the server has one core, as nginx has one
# worker).
gateway_config() {
  local dir=$1 delivery=$2 max_connections=$3 store_kind=${4:-sqlite} config_root=${5:-$root}
  local store
  if [ "$store_kind" = postgres ]; then
    local schema
    schema="bench_$(basename "$dir" | tr -c 'a-z0-9\n' '_')_$$"
    store="\"kind\": \"postgres\", \"dsn\": \"$MXGW_TEST_PG_DSN\", \"schema\": \"$schema\""
    mkdir -p "$dir"
    echo "$schema" > "$dir/pg-schema"
  else
    store="\"kind\": \"sqlite\", \"path\": \"$dir/var/mxgw.db\""
  fi
  mkdir -p "$dir"
  # Persons matched across messages, as shipped, by a build that knows them (bench/ab.sh may run
  # an older one).
  local persons=
  if "$mxgw" --help | grep -q "^  persons "; then
    persons='
  "persons": {"match_key": {"file": "'"$certs/match-key.hex"'"}},'
  fi
  # Keyed message ids, as shipped, by a build that knows them.
  if grep -q "message_ids.unkeyed" "$mxgw"; then
    persons="$persons"'
  "message_ids": {"key": {"file": "'"$certs/id-key.hex"'"}},'
  fi
  cat > "$dir/partners.json" <<EOF
{"partners": [
  {"id": "vn-gialai", "name": "Gia Lai (sender of canonical messages)", "country": "VN",
   "adapter": "mx", "agreements": ["victim-data"],
   "purposes": ["investigation", "victim-protection", "repatriation", "identity-verification"]},
  {"id": "kh-stungtreng", "name": "Stung Treng (sender of KH-CNP messages)", "country": "KH",
   "adapter": "kh-cnp", "agreements": ["victim-data"],
   "purposes": ["investigation", "victim-protection", "repatriation", "identity-verification"]},
  {"id": "kh-ratanakiri", "name": "Ratanakiri (recipient: the partner-sim)", "country": "KH",
   "adapter": "mx", "endpoint": "https://localhost:$port_sim/v1/messages",
   "agreements": ["victim-data"],
   "purposes": ["investigation", "victim-protection", "repatriation", "identity-verification"],
   "delivery": {"concurrency": 64}}
]}
EOF
  cat > "$dir/routing.json" <<EOF
{"rules": [{"id": "bench", "match": {"types": ["victim.identification", "hotline.tip"]},
            "add": ["kh-ratanakiri"]}]}
EOF
  cat > "$dir/gateway.json" <<EOF
{
  "threads": 1,
  "listener": {
    "address": "127.0.0.1",
    "port": $port_mxgw,
    "tls": {"certificate": "$certs/server.pem", "private_key": "$certs/server.key",
            "partner_ca": ["$certs/ca.pem"], "crl": ["$certs/crl.pem"], "min_version": "1.3"},
    "limits": {"max_connections": $max_connections,
               "max_connections_per_address": $max_connections}
  },
  "store": {$store,
            "encryption": {"active": "bench", "keys": [{"id": "bench", "file": "$certs/store-key.hex"}]}},$persons
  "delivery": {"enabled": $delivery, "client_certificate": "$certs/server.pem",
               "client_key": "$certs/server.key", "partner_server_ca": ["$certs/ca.pem"]},
  "partners": "partners.json",
  "routing": "routing.json",
  "schema_dir": "$config_root/config/schema",
  "mappings_dir": "$config_root/config/mappings",
  "log": {"level": "info", "file": ""}
}
EOF
  "$mxgw" config check --config "$dir/gateway.json" > /dev/null
}
