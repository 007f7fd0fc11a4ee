#!/bin/bash
# Container health checks of the gitfaas images (installed as /usr/local/bin/gitfaas-healthcheck).
# Only bash built-ins and /proc: the runtime image has no curl.
#
#   gitfaas-healthcheck http PATH [VAR]
#                                   GET http://127.0.0.1:<port>PATH answers 200; the port is that
#                                   of the address in the variable VAR, by default
#                                   GITFAAS__FRONTEND__LISTEN (frontend: /health/ready checks Redis
#                                   and the broker). Executor and observer serve /health/ready on
#                                   GITFAAS__EXECUTOR__METRICS_LISTEN / GITFAAS__OBSERVER__METRICS_LISTEN
#                                   (ready: the consumer has partitions, or the broker answers)
#   gitfaas-healthcheck kafka       the service (PID 1's tree; a container has its own network
#                                   namespace) holds an established TCP connection to a port of
#                                   GITFAAS__KAFKA__BROKERS: "alive and connected to the broker",
#                                   for a service started without its metrics listener.
set -uo pipefail

http_check() {
  local path="${1:-/health/ready}" var="${2:-GITFAAS__FRONTEND__LISTEN}" listen
  if [[ "$var" == GITFAAS__FRONTEND__LISTEN ]]; then listen="${GITFAAS__FRONTEND__LISTEN:-0.0.0.0:8080}"; else listen="${!var:-}"; fi
  [[ -n "$listen" ]] || { echo "$var is not set"; return 1; }
  local port="${listen##*:}" status
  exec 3<>"/dev/tcp/127.0.0.1/$port" || { echo "nothing listens on :$port"; return 1; }
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
  IFS= read -r -t 5 status <&3 || { echo "no answer from :$port$path"; return 1; }
  exec 3>&-
  status="${status%$'\r'}"
  [[ "$status" =~ ^HTTP/[0-9.]+\ 200 ]] || { echo "$path: $status"; return 1; }
  echo "$path: $status"
}

kafka_check() {
  local brokers="${GITFAAS__KAFKA__BROKERS:-}" want=() entry port sl local_addr remote st rest
  [[ -n "$brokers" ]] || { echo "GITFAAS__KAFKA__BROKERS is not set"; return 1; }
  IFS=',' read -ra entries <<<"$brokers"
  for entry in "${entries[@]}"; do
    port="${entry##*:}"
    [[ "$port" =~ ^[0-9]+$ ]] && want+=("$(printf '%04X' "$port")")
  done
  for table in /proc/net/tcp /proc/net/tcp6; do
    [[ -r "$table" ]] || continue
    while read -r sl local_addr remote st rest; do
      [[ "$st" == 01 ]] || continue # 01 = ESTABLISHED
      for port in "${want[@]}"; do
        if [[ "${remote##*:}" == "$port" ]]; then
          echo "connected to the broker (port $((16#$port)))"
          return 0
        fi
      done
    done <"$table"
  done
  echo "no established connection to the broker ($brokers)"
  return 1
}

case "${1:-}" in
  http) shift; http_check "$@" ;;
  kafka) kafka_check ;;
  *) echo "usage: gitfaas-healthcheck http PATH [VAR] | kafka" >&2; exit 2 ;;
esac
