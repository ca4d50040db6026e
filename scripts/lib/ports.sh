# Sourced by the scripts that start a local service (DynamoDB Local, the OpenID Connect provider): a free
# loopback port, and waiting until the service listens on it.

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_port PORT PID LOG: returns once something accepts on 127.0.0.1:PORT (30 s at most); if PID
# dies first, prints its LOG and exits.
wait_for_port() {
    local port=$1 pid=$2 log=$3
    for _ in $(seq 1 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.2
    done
}
