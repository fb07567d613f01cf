# shellcheck shell=bash
# Shared by bench/run.sh and bench/ab.sh (sourced, not run): what every benchmark run needs.
# bench_inputs MXGW DIR: in DIR, a development CA with a server certificate and the partner
# certificates of vn-gialai and kh-stungtreng (DIR/certs), a data key for encryption at rest
# (DIR/certs/store-key.hex), and the request bodies: the shipped examples with a {{uuid}}
# placeholder that mxgw-loadgen replaces by a fresh UUID per request (the gateway deduplicates by
# id; KH-CNP ids derive from msg_no): DIR/canonical.json (a hotline tip) and DIR/kh-cnp.json (the
# KH-CNP victim referral). Run from the checkout's top folder.
bench_inputs() {
  local mxgw=$1 dir=$2 partner
  "$mxgw" certs init --dir "$dir/certs" > /dev/null
  for partner in vn-gialai kh-stungtreng; do
    "$mxgw" certs issue --dir "$dir/certs" --partner "$partner" --out "$dir/certs/$partner" > /dev/null
  done
  "$mxgw" keys generate --out "$dir/certs/store-key.hex" > /dev/null
  sed 's/"id": "[0-9a-f-]*"/"id": "{{uuid}}"/' config/examples/hotline.tip.json > "$dir/canonical.json"
  sed 's/"msg_no": "[^"]*"/"msg_no": "RTK-{{uuid}}"/' \
    tests/adapters/golden/kh-cnp/victim-referral.kh.json > "$dir/kh-cnp.json"
  grep -q '{{uuid}}' "$dir/canonical.json" && grep -q '{{uuid}}' "$dir/kh-cnp.json"
}
