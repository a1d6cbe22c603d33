#!/usr/bin/env bash
# smoke.sh - drives every behaviour of inferq-fake-model over loopback with
# curl and jq, and exits non-zero on the first run with any mismatch.
#
# usage: tests/fake/smoke.sh [path/to/inferq-fake-model [FLAG...]]
# FLAGs are added to every server it starts, e.g. --thread-per-connection to
# check the other connection mode.
# Needs: curl, jq. Starts its own servers on free ports; leaves nothing behind.
set -u

BIN=${1:-${INFERQ_FAKE_MODEL:-build/bin/inferq-fake-model}}
shift $(($# > 0 ? 1 : 0))
FAKE_FLAGS=("$@")
THREADED=0
for f in "${FAKE_FLAGS[@]}"; do [ "$f" = --thread-per-connection ] && THREADED=1; done
if [ ! -x "$BIN" ]; then
    echo "smoke.sh: $BIN is not an executable (pass the path as \$1)" >&2
    exit 2
fi
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "smoke.sh: $tool is required" >&2; exit 2; }
done

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

FAILS=0
CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok   $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL $1${2:+ ($2)}"; }
# expect DESC GOT WANT
expect() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "got '$2', want '$3'"; fi; }
# expect_true DESC COMMAND...
expect_true() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# float comparison: fcmp A OP B, e.g. fcmp 0.31 '>=' 0.3
fcmp() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }

# start NAME ARGS... : starts a server, waits for its port file, sets URL_NAME and PID_NAME.
start() {
    local name=$1; shift
    "$BIN" --port 0 --port-file "$WORK/$name.port" "$@" "${FAKE_FLAGS[@]}" 2>"$WORK/$name.log" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        [ -s "$WORK/$name.port" ] && break
        sleep 0.05
    done
    if [ ! -s "$WORK/$name.port" ]; then
        echo "smoke.sh: server $name did not start:" >&2
        cat "$WORK/$name.log" >&2
        exit 1
    fi
    printf -v "URL_$name" 'http://127.0.0.1:%s' "$(cat "$WORK/$name.port")"
    printf -v "PID_$name" '%s' "$pid"
}

# req METHOD URL [BODY|""] [curl args...]: body -> $WORK/body, headers -> $WORK/hdr;
# sets CODE (HTTP status), RC (curl exit code) and TIME (seconds).
req() {
    local method=$1 url=$2; shift 2
    local data=()
    if [ $# -gt 0 ]; then
        [ -n "$1" ] && data=(--data-binary "$1")
        shift
    fi
    local out
    out=$(curl -s -X "$method" -o "$WORK/body" -D "$WORK/hdr" -w '%{http_code} %{time_total}' \
        -H 'Content-Type: application/json' "${data[@]}" "$@" "$url")
    RC=$?
    CODE=${out%% *}
    TIME=${out##* }
}
body() { jq -r "$@" "$WORK/body" 2>/dev/null; }
header() { tr -d '\r' <"$WORK/hdr" | awk -v h="$(echo "$1" | tr A-Z a-z)" \
    'BEGIN{FS=": "} tolower($1)==h {print $2}'; }
# chat CONTENT [MODEL] -> a chat.completion request body with one user message
chat() { jq -nc --arg c "$1" --arg m "${2:-fake-chat}" '{model:$m,messages:[{role:"user",content:$c}]}'; }
# cpu_ticks PID -> utime+stime of a process in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# stat_until URL JQ_FILTER WANT [SECONDS]: polls /_fake/stats until the filter
# gives WANT (default deadline 5 s); prints the last value.
stat_until() {
    local v="" end=$((SECONDS + ${4:-5}))
    while :; do
        v=$(curl -s "$1/_fake/stats" | jq -r "$2")
        [ "$v" = "$3" ] || [ "$SECONDS" -ge "$end" ] && break
        sleep 0.05
    done
    echo "$v"
}

echo "== server A: defaults with --models alpha,beta"
start A --models alpha,beta
A=$URL_A

req GET "$A/v1/models"
expect "models: 200" "$CODE" 200
expect "models: list shape" "$(body '.object + ":" + ([.data[].id] | join(",")) + ":" + .data[0].object')" "list:alpha,beta:model"
req GET "$A/v1/models/alpha"
expect "models/alpha: 200" "$(body .id)" alpha
req GET "$A/v1/models/nope"
expect "models/nope: 404 model_not_found" "$CODE $(body .error.code)" "404 model_not_found"

req POST "$A/v1/chat/completions" '{"model":"m-1","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hello"}]}'
expect "chat: 200" "$CODE" 200
expect "chat: echo of the last user message" "$(body '.choices[0].message.content')" "echo: hello"
expect "chat: shape" "$(body '[.object, .model, .choices[0].message.role, .choices[0].finish_reason, (.id | startswith("chatcmpl-")), (.created | type)] | join(",")')" "chat.completion,m-1,assistant,stop,true,number"
expect "chat: usage (2+2 prompt, 3 completion)" "$(body '.usage | "\(.prompt_tokens) \(.completion_tokens) \(.total_tokens)"')" "4 3 7"
expect_true "chat: Content-Type application/json" grep -qi '^content-type: application/json' "$WORK/hdr"

req POST "$A/v1/chat/completions" '{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"ab"},{"type":"image_url","image_url":{"url":"http://x"}},{"type":"text","text":"cd"}]}]}'
expect "chat: array content concatenated, last user message" "$(body '.choices[0].message.content')" "echo: abcd"
expect "chat: completion_tokens capped by max_tokens" "$(body .usage.completion_tokens)" 1

req POST "$A/v1/chat/completions" '{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream me please, a somewhat longer text"}]}'
expect "chat stream: 200 text/event-stream" "$CODE $(header content-type)" "200 text/event-stream"
expect "chat stream: ends with [DONE]" "$(grep '^data: ' "$WORK/body" | tail -1)" "data: [DONE]"
expect "chat stream: deltas add up to the echo" \
    "$(grep '^data: {' "$WORK/body" | sed 's/^data: //' | jq -j '.choices[0].delta.content // empty')" \
    "echo: stream me please, a somewhat longer text"

req POST "$A/v1/completions" '{"model":"c","prompt":"once upon"}'
expect "completions: text_completion echo" "$(body '.object + "|" + .choices[0].text + "|" + .model')" "text_completion|echo: once upon|c"

req POST "$A/v1/embeddings" '{"model":"e","input":"alpha"}'
expect "embeddings: string input, 8 floats" "$(body '.object + " " + .data[0].object + " " + (.data[0].embedding | length | tostring) + " " + (.data[0].index | tostring)')" "list embedding 8 0"
E1=$(body -c '.data[0].embedding')
req POST "$A/v1/embeddings" '{"model":"e","input":["beta","alpha","gamma"]}'
expect "embeddings: array input, indices" "$(body -c '[.data[].index]')" "[0,1,2]"
expect "embeddings: deterministic per input" "$(body -c '.data[1].embedding')" "$E1"
expect_true "embeddings: different inputs differ" [ "$(body -c '.data[0].embedding')" != "$E1" ]
expect "embeddings: usage" "$(body '.usage.prompt_tokens == .usage.total_tokens and .usage.prompt_tokens > 0')" true
req POST "$A/v1/embeddings" '{"model":"e","input":"alpha","encoding_format":"base64"}'
expect "embeddings: base64 = 8 float32" "$(body -r '.data[0].embedding' | base64 -d | wc -c)" 32

req POST "$A/v1/chat/completions" '{"model": "m", "messages": ['
expect "bad JSON: 400 invalid_request_error" "$CODE $(body -c '.error | [.type, .param, .code]')" '400 ["invalid_request_error",null,null]'
expect_true "bad JSON: error.message present" [ -n "$(body .error.message)" ]
req POST "$A/v1/chat/completions" '{"messages":[{"role":"user","content":"hi"}]}'
expect "missing model: 400" "$CODE $(body .error.type)" "400 invalid_request_error"
req POST "$A/v1/chat/completions" '{"model":"m"}'
expect "missing messages: 400 param messages" "$CODE $(body .error.param)" "400 messages"
req POST "$A/v1/nope" '{}'
expect "unknown path: 404 OpenAI shape" "$CODE $(body .error.type)" "404 invalid_request_error"
req GET "$A/v1/chat/completions"
expect "GET on a POST endpoint: 405" "$CODE" 405
req POST "$A/v1/chat/completions" "$(chat 'x [[fake:sattus=500]]')"
expect "unknown directive: 400 names it" "$CODE $(body .error.message)" "400 fake: unknown directive [[fake:sattus]]"

req POST "$A/v1/chat/completions" "$(chat 'x [[fake:status=429]] y [[fake:retry_after=7]]')"
expect "status=429: 429" "$CODE" 429
expect "status=429: rate_limit_exceeded type/code" "$(body '.error.type + "/" + .error.code')" "rate_limit_exceeded/rate_limit_exceeded"
expect "retry_after=7: Retry-After header" "$(header retry-after)" 7
req POST "$A/v1/chat/completions" "$(chat '[[fake:status=503]][[fake:retry_after=2]]')"
expect "status=503 + retry_after: server_error, Retry-After 2" "$CODE $(body .error.type) $(header retry-after)" "503 server_error 2"
req POST "$A/v1/chat/completions" "$(chat '[[fake:status=500]]')"
expect "status=500: server_error, no Retry-After" "$CODE $(body .error.type) $(header retry-after)" "500 server_error "
req POST "$A/v1/chat/completions" "$(chat '[[fake:status=529]]')"
expect "status=529: overloaded" "$CODE $(body .error.type)" "529 overloaded"
req POST "$A/v1/completions" '{"model":"c","prompt":"[[fake:status=502]]"}'
expect "directives in a completions prompt" "$CODE" 502

req POST "$A/v1/chat/completions" "$(chat 'ignored [[fake:content=Paris is the capital.]] ignored')"
expect "content=TEXT replaces the echo" "$CODE $(body '.choices[0].message.content')" "200 Paris is the capital."

req POST "$A/v1/chat/completions" "$(chat '[[fake:latency=300]]')"
expect_true "latency=300: took >= 0.3 s ($TIME)" fcmp "$TIME" '>=' 0.3

# Hang: the client gives up after 1 s; meanwhile other connections are served
# at once and the server spends no CPU.
T0=$(cpu_ticks "$PID_A")
curl -s -m 1 -o /dev/null "$A/v1/chat/completions" -d "$(chat '[[fake:hang]]')" &
HANG_PID=$!
sleep 0.2
req GET "$A/v1/models"
expect_true "hang: other connections still served ($TIME s)" fcmp "$TIME" '<' 0.5
req POST "$A/v1/chat/completions" "$(chat '[[fake:latency=200]]')"
expect_true "latency does not wait for the hang ($TIME s)" fcmp "$TIME" '<' 0.6
wait "$HANG_PID"
expect "hang: curl -m 1 times out (exit 28)" "$?" 28
T1=$(cpu_ticks "$PID_A")
expect_true "hang: no CPU burnt ($((T1 - T0)) ticks)" [ $((T1 - T0)) -lt 20 ]
sleep 0.2
req GET "$A/_fake/stats"
expect "hang: released when the client gave up (in_flight 0)" "$(body .in_flight)" 0

# Many slow requests at once: each waits on its own, none waits for another.
START=$(date +%s%N)
CODES=$(curl -s -Z --parallel-immediate --parallel-max 200 -o /dev/null -w '%{http_code}\n' \
    -H 'Content-Type: application/json' -d "$(chat '[[fake:latency=500]]')" \
    "$A/v1/chat/completions?i=[1-200]" 2>/dev/null | sort | uniq -c | awk '{print $2 "x" $1}')
ELAPSED_MS=$((($(date +%s%N) - START) / 1000000))
expect "200 parallel requests with latency=500: all 200" "$CODES" "200x200"
expect_true "200 parallel latency=500 requests overlap (${ELAPSED_MS} ms)" [ "$ELAPSED_MS" -lt 5000 ]
req GET "$A/_fake/stats"
expect_true "200 parallel requests: max_in_flight $(body .max_in_flight) >= 100" [ "$(body .max_in_flight)" -ge 100 ]

# A hang whose client pipelined a second request and then closed: the server
# sees the close behind the unread bytes and releases it at once. (The
# --thread-per-connection mode only peeks at the socket and cannot.)
if [ "$THREADED" = 0 ]; then
    HB=$(chat '[[fake:hang]]')
    HUNG0=$(curl -s "$A/_fake/stats" | jq .hung)
    exec 3<>"/dev/tcp/127.0.0.1/${A##*:}"
    printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%sGET /v1/models HTTP/1.1\r\nHost: a\r\n\r\n' \
        "${#HB}" "$HB" >&3
    expect "pipelined hang: held" "$(stat_until "$A" "[.hung - $HUNG0, .in_flight] | @text" "[1,1]")" "[1,1]"
    exec 3>&- 3<&-
    expect "pipelined hang: released when the client closed (in_flight 0)" "$(stat_until "$A" .in_flight 0)" 0
fi

req POST "$A/v1/chat/completions" "$(chat '[[fake:drop]]')"
expect "drop: empty reply (curl exit 52)" "$RC" 52
req POST "$A/v1/chat/completions" "$(chat '[[fake:malformed]]')"
expect "malformed: 200" "$CODE" 200
expect_true "malformed: body is not valid JSON" eval '[ -s "$WORK/body" ] && ! jq -e . "$WORK/body" >/dev/null 2>&1'
expect_true "malformed: body is a prefix of a completion" grep -q '^{"id":"chatcmpl-' "$WORK/body"

# fail_first and stats start from a clean slate.
req POST "$A/_fake/reset"
expect "reset: 200" "$CODE $(body .ok)" "200 true"
SEQ=""
for _ in 1 2 3 4; do req POST "$A/v1/chat/completions" "$(chat 'try [[fake:fail_first=2]][[fake:key=k1]]')"; SEQ="$SEQ$CODE "; done
expect "fail_first=2 key=k1: 503 503 200 200" "$SEQ" "503 503 200 200 "
SEQ=""
for i in 1 2 3; do req POST "$A/v1/chat/completions" "$(chat "attempt $i [[fake:fail_first=2]][[fake:key=k2]][[fake:status=429]][[fake:retry_after=1]]")"; SEQ="$SEQ$CODE/$(header retry-after) "; done
expect "fail_first with key survives changing text; status=429 + Retry-After" "$SEQ" "429/1 429/1 200/ "
SEQ=""
for _ in 1 2; do req POST "$A/v1/chat/completions" "$(chat 'same text [[fake:fail_first=1]]')"; SEQ="$SEQ$CODE "; done
req POST "$A/v1/chat/completions" "$(chat 'other text [[fake:fail_first=1]]')"
SEQ="$SEQ$CODE"
expect "fail_first without key: keyed by message content" "$SEQ" "503 200 503"
req POST "$A/v1/chat/completions" "$(chat '[[fake:fail_first=1]][[fake:key=k3]][[fake:drop]]')"
SEQ="$RC"
req POST "$A/v1/chat/completions" "$(chat '[[fake:fail_first=1]][[fake:key=k3]][[fake:drop]]')"
expect "fail_first=1 + drop: dropped, then 200" "$SEQ $CODE" "52 200"
req GET "$A/v1/models"
req POST "$A/v1/nothing" '{}'

req GET "$A/_fake/stats"
expect "stats: requests" "$(body .requests)" 14
expect "stats: by_key" "$(body -cS '.by_key')" '{"k1":4,"k2":3,"k3":2}'
expect "stats: by_status" "$(body -c '.by_status | to_entries | sort_by(.key) | from_entries')" '{"200":6,"404":1,"429":2,"503":4}'
expect "stats: by_path" "$(body -c '.by_path | to_entries | sort_by(.key) | from_entries')" '{"/v1/chat/completions":12,"/v1/models":1,"other":1}'
expect "stats: dropped" "$(body .dropped)" 1

req POST "$A/_fake/reset"
req POST "$A/v1/chat/completions" "$(chat 'try [[fake:fail_first=2]][[fake:key=k1]]')"
expect "reset clears fail_first state" "$CODE" 503
req GET "$A/_fake/stats"
expect "reset clears counters" "$(body -c '[.requests, .by_key.k1, .dropped]')" "[1,1,0]"

head -c $((17 * 1024 * 1024)) /dev/zero | tr '\0' a >"$WORK/big"
req POST "$A/v1/chat/completions" "@$WORK/big"
expect "body over 16 MiB: 413" "$CODE" 413
req POST "$A/v1/chat/completions" "@$WORK/big" -H 'Transfer-Encoding: chunked'
expect "chunked body over 16 MiB: 413" "$CODE" 413

req POST "$A/openai/deployments/dep-1/chat/completions?api-version=2024-06-01" "$(jq -nc '{messages:[{role:"user",content:"az"}]}')"
expect "Azure path: model from deployment" "$CODE $(body .model) $(body '.choices[0].message.content')" "200 dep-1 echo: az"

# Chat answers are written without jansson (fm_chat_json); --slow-json builds
# them with jansson as before: the bytes must be the same, ids and times aside.
start E --slow-json --quiet
same_bytes() { sed -E 's/"id":"chatcmpl-[0-9a-f]{16}"/"id":"X"/; s/"created":[0-9]+/"created":0/' "$WORK/body"; }
for body in "$(chat 'q" b\\ s/ é 中 😀 \u2028 '"$(printf '\001\037\b\f\n\r\t\177')")" \
    "$(chat 'x [[fake:malformed]] é' 'mo"del/é')" '{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"a\u0001"},{"type":"text","text":"\ud83d\ude00"}]}]}'; do
    req POST "$A/v1/chat/completions" "$body"
    FAST="$CODE $(same_bytes)"
    req POST "$URL_E/v1/chat/completions" "$body"
    expect "chat answer without jansson = with jansson ($(printf %.24s "$body"))" "$FAST" "$CODE $(same_bytes)"
done
kill -TERM "$PID_E"
wait "$PID_E"

echo "== server A: provider dialects (Anthropic, Gemini, Bedrock)"
# The request bodies are the ones the gateway's adapters build (the unit
# test test_provider_roundtrip asserts that), and the answers must stay the
# ones recorded there, apart from ids.
DATA=$(cd "$(dirname "$0")/../unit/data/providers" && pwd)
same_as() { # same_as DESC RECORDED_FILE JQ_FILTER_THAT_DROPS_IDS
    expect "$1" "$(jq -cS "$3" "$WORK/body")" "$(jq -cS "$3" "$2")"
}
AV=(-H 'anthropic-version: 2023-06-01')
amsg() { jq -nc --arg c "$1" '{model:"claude-x",max_tokens:64,messages:[{role:"user",content:$c}]}'; }
gmsg() { jq -nc --arg c "$1" '{contents:[{role:"user",parts:[{text:$c}]}]}'; }
bmsg() { jq -nc --arg c "$1" '{messages:[{role:"user",content:[{text:$c}]}]}'; }
SIGV4=(--aws-sigv4 aws:amz:us-east-1:bedrock --user AKIDSMOKE:secret)

req POST "$A/v1/messages" "@$DATA/anthropic/chat_hi.request.json" "${AV[@]}"
expect "anthropic: 200 echo" "$CODE $(body '.content[0].text')" "200 echo: Hi"
same_as "anthropic: the recorded Messages answer" "$DATA/anthropic/fake_chat_hi.response.json" 'del(.id)'
expect_true "anthropic: id msg_..." eval '[[ "$(body .id)" == msg_* ]]'
req POST "$A/v1/messages" '{"model":"m","max_tokens":1,"system":[{"type":"text","text":"sys"}],"messages":[{"role":"user","content":[{"type":"text","text":"ab"},{"type":"text","text":"cd"}]}]}' "${AV[@]}"
expect "anthropic: text blocks joined, output_tokens capped" "$(body -c '[.content[0].text, .usage.output_tokens, .usage.input_tokens]')" '["echo: abcd",1,2]'
req POST "$A/v1/messages" "$(amsg hi)"
expect "anthropic: no anthropic-version: 400 error shape" "$CODE $(body -c '[.type, .error.type]')" '400 ["error","invalid_request_error"]'
req POST "$A/v1/messages" '{"model":"m","messages":[{"role":"user","content":"x"}]}' "${AV[@]}"
expect "anthropic: max_tokens required" "$CODE $(body .error.message)" "400 max_tokens: Field required"
req POST "$A/v1/messages" "$(amsg '[[fake:status=529]]')" "${AV[@]}"
expect "anthropic: status=529 overloaded_error" "$CODE $(body -c '[.type, .error.type]')" '529 ["error","overloaded_error"]'
req POST "$A/v1/messages" "$(amsg '[[fake:status=429]][[fake:retry_after=3]]')" "${AV[@]}"
expect "anthropic: status=429 rate_limit_error + Retry-After" "$CODE $(body .error.type) $(header retry-after)" "429 rate_limit_error 3"

req POST "$A/v1beta/models/gemini-2.5-flash:generateContent" "@$DATA/gemini/chat_hi.request.json"
expect "gemini: 200 echo" "$CODE $(body '.candidates[0].content.parts[0].text')" "200 echo: Hi"
same_as "gemini: the recorded generateContent answer" "$DATA/gemini/fake_chat_hi.response.json" 'del(.responseId)'
req POST "$A/v1/models/gemini-x:generateContent" "$(gmsg v1)"
expect "gemini: v1 path, model from the path" "$CODE $(body .modelVersion) $(body '.candidates[0].finishReason')" "200 gemini-x STOP"
req POST "$A/v1beta/models/g:generateContent" '{"contents":[]}'
expect "gemini: empty contents: 400 INVALID_ARGUMENT" "$CODE $(body -c '[.error.code, .error.status]')" '400 [400,"INVALID_ARGUMENT"]'
req POST "$A/v1beta/models/g:generateContent" "$(gmsg '[[fake:status=429]]')"
expect "gemini: status=429 RESOURCE_EXHAUSTED" "$CODE $(body .error.status)" "429 RESOURCE_EXHAUSTED"
req POST "$A/v1beta/models/g:generateContent" "$(gmsg '[[fake:malformed]]')"
expect_true "gemini: malformed: 200, not JSON" eval '[ "$CODE" = 200 ] && ! jq -e . "$WORK/body" >/dev/null 2>&1'
req POST "$A/v1beta/models/e:embedContent" '{"content":{"parts":[{"text":"alpha"}]}}'
expect "gemini: embedContent = the OpenAI vector of the same text" "$(body -c '.embedding.values')" "$E1"
req POST "$A/v1beta/models/e:batchEmbedContents" '{"requests":[{"model":"models/e","content":{"parts":[{"text":"x"}]}},{"model":"models/e","content":{"parts":[{"text":"alpha"}]}}]}'
expect "gemini: batchEmbedContents" "$CODE $(body '.embeddings | length') $(body -c '.embeddings[1].values')" "200 2 $E1"
req POST "$A/v1beta/models/e:batchEmbedContents" '{"requests":[{"model":"models/other","content":{"parts":[{"text":"x"}]}}]}'
expect "gemini: batch with another model: 400" "$CODE $(body .error.status)" "400 INVALID_ARGUMENT"

req POST "$A/model/amazon.nova-lite-v1%3A0/converse" "@$DATA/bedrock/chat_hi.request.json"
expect "bedrock: unsigned: 403 MissingAuthenticationToken" "$CODE $(header x-amzn-errortype | cut -d: -f1)" "403 MissingAuthenticationTokenException"
req POST "$A/model/amazon.nova-lite-v1%3A0/converse" "@$DATA/bedrock/chat_hi.request.json" "${SIGV4[@]}"
expect "bedrock: signed: 200 echo" "$CODE $(body '.output.message.content[0].text')" "200 echo: Hi"
same_as "bedrock: the recorded Converse answer" "$DATA/bedrock/fake_chat_hi.response.json" '.'
req POST "$A/model/m/converse" '{"messages":[{"role":"user","content":[{"text":"a"}]},{"role":"user","content":[{"text":"b"}]}]}' "${SIGV4[@]}"
expect "bedrock: roles must alternate: 400 ValidationException" "$CODE $(header x-amzn-errortype | cut -d: -f1)" "400 ValidationException"
expect_true "bedrock: error body is {message}" eval '[[ "$(body -c "keys")" == "[\"message\"]" && "$(body .message)" == *alternate* ]]'
req POST "$A/model/m/converse" '{"messages":[{"role":"user","content":[{"text":""}]}]}' "${SIGV4[@]}"
expect "bedrock: blank text: 400" "$CODE" 400
req POST "$A/model/m/converse" "$(bmsg '[[fake:status=429]]')" "${SIGV4[@]}"
expect "bedrock: status=429 ThrottlingException" "$CODE $(header x-amzn-errortype | cut -d: -f1)" "429 ThrottlingException"
SEQ=""
for _ in 1 2; do req POST "$A/model/m/converse" "$(bmsg 'x [[fake:key=bk]][[fake:fail_first=1]]')" "${SIGV4[@]}"; SEQ="$SEQ$CODE/$(header x-amzn-errortype | cut -d: -f1) "; done
expect "bedrock: fail_first=1: 503 ServiceUnavailable, then 200" "$SEQ" "503/ServiceUnavailableException 200/ "

echo "== server D: dialect authentication with --api-key"
DKEY="sk-dialect-$RANDOM$RANDOM-secret"
start D --api-key "$DKEY" --verbose
D=$URL_D
req POST "$D/v1/messages" "$(amsg hi)" "${AV[@]}"
expect "anthropic: no x-api-key: 401 authentication_error" "$CODE $(body .error.type)" "401 authentication_error"
req POST "$D/v1/messages" "$(amsg hi)" "${AV[@]}" -H "Authorization: Bearer $DKEY"
expect "anthropic: Bearer is not how Anthropic takes keys: 401" "$CODE" 401
req POST "$D/v1/messages" "$(amsg hi)" "${AV[@]}" -H "x-api-key: $DKEY"
expect "anthropic: x-api-key: 200" "$CODE" 200
req POST "$D/v1beta/models/g:generateContent" "$(gmsg hi)"
expect "gemini: no key: 403 PERMISSION_DENIED" "$CODE $(body .error.status)" "403 PERMISSION_DENIED"
req POST "$D/v1beta/models/g:generateContent?key=$DKEY" "$(gmsg hi)"
expect "gemini: ?key= in the URL is not accepted: 403" "$CODE" 403
req POST "$D/v1beta/models/g:generateContent" "$(gmsg hi)" -H "x-goog-api-key: wrong"
expect "gemini: wrong key: 400 INVALID_ARGUMENT" "$CODE $(body .error.status)" "400 INVALID_ARGUMENT"
req POST "$D/v1beta/models/g:generateContent" "$(gmsg hi)" -H "x-goog-api-key: $DKEY"
expect "gemini: x-goog-api-key: 200" "$CODE" 200
req POST "$D/model/anthropic.claude-v2%3A1/converse" "$(bmsg hi)" "${SIGV4[@]}"
expect "bedrock: another access key: 403 UnrecognizedClient" "$CODE $(header x-amzn-errortype | cut -d: -f1)" "403 UnrecognizedClientException"
req POST "$D/model/anthropic.claude-v2%3A1/converse" "$(bmsg hi)" --aws-sigv4 aws:amz:us-east-1:bedrock --user "$DKEY:secret"
expect "bedrock: access key id = --api-key: 200" "$CODE" 200
req POST "$D/model/m/converse" "$(bmsg hi)" -H "Authorization: Bearer $DKEY"
expect "bedrock: Bedrock API key as Bearer: 200" "$CODE" 200
expect_true "bedrock: model id with %3A decoded in the path" grep -q 'POST /model/anthropic.claude-v2:1/converse' "$WORK/D.log"
kill -TERM "$PID_D"
wait "$PID_D"
expect "server D: SIGTERM: exit 0" "$?" 0
expect_true "the dialect key never appears in the server output" eval '! grep -qF -- "$DKEY" "$WORK/D.log"'

echo "== server B: --fail-rate 0.5 --seed 42 --latency-ms 150"
start B --fail-rate 0.5 --seed 42 --latency-ms 150 --quiet
B=$URL_B
req GET "$B/v1/models"
expect_true "--latency-ms 150: took >= 0.15 s ($TIME)" fcmp "$TIME" '>=' 0.15
req POST "$B/_fake/reset"
run_b() { local s=""; for _ in $(seq 12); do req POST "$B/v1/embeddings" '{"model":"e","input":"x"}'; s="$s$CODE "; done; echo "$s"; }
S1=$(run_b)
req POST "$B/_fake/reset"
S2=$(run_b)
expect "--fail-rate: same sequence after reset with the same seed" "$S2" "$S1"
expect_true "--fail-rate 0.5: both 200 and 503 in [$S1]" eval '[[ "$S1" == *200* && "$S1" == *503* ]]'
expect "--quiet: nothing printed" "$(cat "$WORK/B.log")" ""

echo "== server C: --api-key --verbose"
KEY="sk-smoke-$RANDOM$RANDOM-secret"
start C --api-key "$KEY" --verbose
C=$URL_C
req POST "$C/v1/chat/completions" "$(chat hi)"
expect "no key: 401 invalid_api_key" "$CODE $(body '.error.type + "/" + .error.code')" "401 invalid_request_error/invalid_api_key"
req POST "$C/v1/chat/completions" "$(chat hi)" -H "Authorization: Bearer wrong-$KEY"
expect "wrong key: 401" "$CODE $(body .error.code)" "401 invalid_api_key"
req GET "$C/v1/models" "" -H "Authorization: Bearer $KEY"
expect "right key: 200" "$CODE" 200
req POST "$C/v1/chat/completions" "$(chat hi)" -H "Authorization: Bearer $KEY"
expect "right key: chat 200" "$CODE $(body '.choices[0].message.content')" "200 echo: hi"
req POST "$C/openai/deployments/d/embeddings?api-version=2024-10-21" '{"input":"x"}' -H "api-key: $KEY"
expect "Azure api-key header: 200" "$CODE" 200
req POST "$C/openai/deployments/d/embeddings" '{"input":"x"}' -H "api-key: $KEY"
expect "Azure without ?api-version: 404" "$CODE" 404
req GET "$C/_fake/stats"
expect "/_fake/stats needs no key" "$CODE" 200

# Stop C with SIGTERM while a request hangs and another sleeps: exit 0, quickly.
curl -s -m 20 -o /dev/null -H "Authorization: Bearer $KEY" "$C/v1/chat/completions" -d "$(chat '[[fake:hang]]')" &
curl -s -m 20 -o /dev/null -H "Authorization: Bearer $KEY" "$C/v1/chat/completions" -d "$(chat '[[fake:latency=15000]]')" &
sleep 0.3
START=$(date +%s%N)
kill -TERM "$PID_C"
wait "$PID_C"
expect "SIGTERM with a hang in flight: exit 0" "$?" 0
ELAPSED_MS=$((($(date +%s%N) - START) / 1000000))
expect_true "SIGTERM: stopped within 2 s (${ELAPSED_MS} ms)" [ "$ELAPSED_MS" -lt 2000 ]
expect_true "port file removed on exit" [ ! -e "$WORK/C.port" ]
expect_true "the key never appears in the server output" eval '! grep -qF -- "$KEY" "$WORK/C.log"'
expect_true "--verbose logged the requests" grep -q 'POST /v1/chat/completions' "$WORK/C.log"

kill -INT "$PID_A"
wait "$PID_A"
expect "SIGINT: exit 0" "$?" 0

echo "== $CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
