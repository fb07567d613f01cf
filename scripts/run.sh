#!/usr/bin/env bash
# The README's run command: install, build, create development certificates, start the gateway
# with the embedded SQLite store on 127.0.0.1:8443, and run a short demo exchange against it.
# The gateway keeps running afterwards until Ctrl-C (set MXGW_DEMO_EXIT=1 to stop after the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

mxgw=build/mxgw
certs=certs/dev
config=config/gateway.json
partners=(vn-gialai vn-thanhhoa kh-ratanakiri kh-stungtreng la-houaphanh)

# Development certificates: generated here, never committed (certs/dev is git-ignored).
if [ ! -f "$certs/ca.key" ]; then
  "$mxgw" certs init --dir "$certs"   # also the admin CA and certs/dev/admin.pem
elif [ ! -f "$certs/admin-ca.key" ]; then
  "$mxgw" certs admin --dir "$certs" --name dev   # a certs/dev made before the admin listener
fi
# A second administrator, for the four-eyes release in the demo.
if [ ! -f "$certs/admin-duty-officer.pem" ]; then
  "$mxgw" certs admin --dir "$certs" --name duty-officer > /dev/null
fi
for partner in "${partners[@]}"; do
  if [ ! -f "$certs/$partner.pem" ]; then
    "$mxgw" certs issue --dir "$certs" --partner "$partner" --out "$certs/$partner" > /dev/null
  fi
done
# The data key for encryption of the store at rest (development only; generated, never committed).
if [ ! -f "$certs/store-key.hex" ]; then
  "$mxgw" keys generate --out "$certs/store-key.hex" > /dev/null
fi
# The key persons' digests are made under, for candidates of the same person (docs/persons.md).
if [ ! -f "$certs/match-key.hex" ]; then
  "$mxgw" keys generate --out "$certs/match-key.hex" > /dev/null
fi
# The key the ids of partners' messages are derived under, so no partner can compute another's
# (docs/security.md, "Message ids").
if [ ! -f "$certs/id-key.hex" ]; then
  "$mxgw" keys generate --out "$certs/id-key.hex" > /dev/null
fi
"$mxgw" config check --config "$config"

mkdir -p var
# Stand-ins for the partners' own systems (config/partners.json names their endpoints):
# Ratanakiri fails twice before it answers (retries), Thanh Hoa refuses everything with 400
# (a dead letter) until it "fixes its side" below.
pids=()
sim() {  # sim NAME PORT [fault options...]
  local name=$1 port=$2
  shift 2
  "$mxgw" partner-sim --listen "127.0.0.1:$port" --format mx --cert "$certs/server.pem" \
    --key "$certs/server.key" --ca "$certs/ca.pem" --verbose "$@" > /dev/null 2> "var/sim-$name.log" &
  pids+=($!)
}
sim kh-ratanakiri 9101 --fail-first 2
sim kh-stungtreng 9102
sim vn-thanhhoa 9103 --always-status 400
thanhhoa_pid=${pids[2]}
# The INTERPOL-style notice feed the gateway polls (fixtures in config/examples/interpol).
"$mxgw" partner-sim --listen 127.0.0.1:9201 --format interpol --fixtures config/examples/interpol \
  --cert "$certs/server.pem" --key "$certs/server.key" --ca "$certs/ca.pem" --verbose \
  > /dev/null 2> var/sim-interpol-notices.log &
pids+=($!)

log=var/gateway.log
"$mxgw" serve --config "$config" 2> "$log" &
gateway_pid=$!
cleanup() {
  kill -TERM "$gateway_pid" "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

send() {  # send PARTNER [mxgw send options...]
  local partner=$1
  shift
  "$mxgw" send --cert "$certs/$partner.pem" --key "$certs/$partner.key" --ca "$certs/ca.pem" "$@" || true
}

ready=0
for _ in $(seq 1 50); do
  if "$mxgw" send --cert "$certs/vn-gialai.pem" --key "$certs/vn-gialai.key" --ca "$certs/ca.pem" \
       --method GET --url https://localhost:8443/healthz > /dev/null 2>&1; then
    ready=1
    break
  fi
  if ! kill -0 $gateway_pid 2>/dev/null; then
    break
  fi
  sleep 0.2
done
if [ $ready -ne 1 ]; then
  echo "the gateway did not start; its log says:" >&2
  cat "$log" >&2
  exit 1
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A fresh id each run, so the demo shows a first accept and then the idempotent repeat.
id=$(cat /proc/sys/kernel/random/uuid)
message=$(mktemp)
sed "s/\"id\": \"[0-9a-f-]*\"/\"id\": \"$id\"/" config/examples/victim.identification.json > "$message"

sed -i 's/"recipients": \["kh-ratanakiri", "kh-stungtreng"\]/"recipients": ["kh-ratanakiri", "kh-stungtreng", "vn-thanhhoa"]/; s/"releasableTo": \["kh-ratanakiri", "kh-stungtreng"\]/"releasableTo": ["kh-ratanakiri", "kh-stungtreng", "vn-thanhhoa"]/' "$message"

status() {  # the sender's view of the message: every recipient's delivery state
  send vn-gialai --method GET --url "https://localhost:8443/v1/messages/$id"
}

step "Gia Lai's liaison desk submits a victim identification for Ratanakiri, Stung Treng and Thanh Hoa (expect 202 Accepted)"
send vn-gialai --url https://localhost:8443/v1/messages "$message"
sleep 2
step "Its delivery: Ratanakiri after two retries, Stung Treng without the victim data it has no agreement for, Thanh Hoa refused it (400: a dead letter)"
status
step "The same message again, e.g. after a lost answer (expect the same 202, nothing new stored)"
send vn-gialai --url https://localhost:8443/v1/messages "$message"
step "Ratanakiri's commissariat tries to send it as Gia Lai (expect 403 sender mismatch)"
send kh-ratanakiri --url https://localhost:8443/v1/messages "$message"
step "A message that breaks the schema (expect 422 naming the field)"
sed 's/"status": "identified"/"status": "found"/' "$message" > "$message.bad"
sed -i "s/$id/$(cat /proc/sys/kernel/random/uuid)/" "$message.bad"
send vn-gialai --url https://localhost:8443/v1/messages "$message.bad"
step "Thanh Hoa fixes its side; the administrator lists the dead letters and replays ours"
kill -TERM "$thanhhoa_pid" 2>/dev/null || true
wait "$thanhhoa_pid" 2>/dev/null || true
sim vn-thanhhoa 9103
"$mxgw" queue dead --config "$config"
"$mxgw" queue replay --config "$config" --message "$id" --recipient vn-thanhhoa
sleep 2
status
step "Ratanakiri, a recipient, sees its own delivery only (expect 200)"
send kh-ratanakiri --method GET --url "https://localhost:8443/v1/messages/$id"

step "A secret identification for Ratanakiri is held until two administrators release it (four-eyes release, docs/release.md)"
secret_id=$(cat /proc/sys/kernel/random/uuid)
sed "s/$id/$secret_id/; s/\"confidentiality\": \"confidential\"/\"confidentiality\": \"secret\"/" "$message" > "$message.secret"
send vn-gialai --url https://localhost:8443/v1/messages "$message.secret"
admin_as() {  # admin_as NAME mxgw-arguments...: an admin API command as that administrator
  local cert=$certs/admin
  [ "$1" = dev ] || cert=$certs/admin-$1
  shift
  "$mxgw" "$@" --admin-url https://localhost:9443 --cert "$cert.pem" --key "$cert.key" \
    --ca "$certs/ca.pem" || true
}
admin_as dev release list
admin_as dev release approve --message "$secret_id" --recipient kh-ratanakiri
echo "(the same administrator again: refused)"
admin_as dev release approve --message "$secret_id" --recipient kh-ratanakiri
admin_as duty-officer release approve --message "$secret_id" --recipient kh-ratanakiri
echo "(Stung Treng has no victim-data agreement: the duty officer refuses its copy)"
admin_as duty-officer release reject --message "$secret_id" --recipient kh-stungtreng \
  --reason not-necessary
sleep 2
send vn-gialai --method GET --url "https://localhost:8443/v1/messages/$secret_id"

step "The same victim in other messages: candidates for an officer to judge, never merged (docs/persons.md)"
echo "(the secret identification names her too: same border pass, same name; the answer names no one)"
admin_as dev persons candidates --message "$id"

step "The notice feed was polled: each red and yellow notice accepted once and routed to Stung Treng (a restart sends nothing again)"
grep '"event":"feed\.' "$log" || true

step "Today's statistics for the six-monthly report: counts only, no identities (docs/report.md)"
today=$(date -u +%F)
"$mxgw" report --config "$config" --from "$today" --to "$today" --format csv

step "Houaphanh's certificate is valid but its partner is disabled (expect no service)"
send la-houaphanh --method GET --url https://localhost:8443/healthz
rm -f "$message" "$message.bad" "$message.secret"

step "What the gateway logged (metadata only: ids, partners, outcomes; never content)"
cat "$log"

step "What the partner stand-ins received (ids and outcomes only)"
tail -n 5 var/sim-*.log

step "Where to look"
echo "  log (JSON lines, metadata only): $log"
echo "  store (SQLite, WAL):             var/mxgw.db"
echo "  status of a message:             $mxgw send --method GET --url https://localhost:8443/v1/messages/<id> --cert $certs/vn-gialai.pem --key $certs/vn-gialai.key --ca $certs/ca.pem"

if [ "${MXGW_DEMO_EXIT:-0}" = "1" ] || [ "${CI:-}" = "true" ]; then
  exit 0
fi
echo
echo "The gateway keeps running on https://localhost:8443; Ctrl-C stops it."
wait $gateway_pid
