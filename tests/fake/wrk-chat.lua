-- wrk script: POST a small chat completion on every request (keep-alive).
-- wrk -t2 -c64 -d10s -s tests/fake/wrk-chat.lua http://127.0.0.1:PORT
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"fake-chat","max_tokens":64,"messages":[' ..
           '{"role":"system","content":"You are a helpful assistant."},' ..
           '{"role":"user","content":"Say hello to the load test."}]}'
