# Shared by the benchmark scripts (sourced, not run).

# ofrep_script FILE SDK_KEY TARGETING_KEY [MORE]: a wrk Lua script that POSTs an OFREP evaluation request for the
# context {"targetingKey": TARGETING_KEY MORE} with the SDK key (MORE: further members, such as `, "plan": "pro"`).
ofrep_script() {
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body = '{"context": {"targetingKey": "$3"${4:-}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $2"
LUA
}
