#!/usr/bin/python3
"""A complete AgentGateway agent in Python, built only from proto/ and docs/protocol.md.

Native gRPC over cleartext HTTP/2 (grpc.insecure_channel). Stubs are generated from proto/ at
start-up (agw_stubs.py); nothing generated is committed.

Flow: generate an ed25519 identity → Register with the enrollment token (proof of possession
over the register transcript) → print the verification code → handshake, retrying with backoff
while the gateway answers FAILED_PRECONDITION "awaiting approval" → UploadHeartbeat,
UploadTelemetry, UploadEvents (each retried once to check idempotency) → ControlStream: hello,
welcome, ack every command (PeerRevoked: distrust the peer; RolloutDirective: check the release
key is pinned with --release-key, verify the signature over the manifest bytes, report
RECEIVED/VERIFIED/APPLYING/SUCCEEDED, then run the new version — there is no real installer),
answer every ping, until GoAway REVOKED → check that a new handshake (and, with
--check-reregister, a new Register with the same key) is refused with PERMISSION_DENIED → exit.

It heartbeats at the interval the gateway asks for while the stream is open. It does not renew
its session (sessions last an hour; this agent lives at most --timeout seconds).

Progress is printed to stdout as one JSON object per line ({"event": ...}); human-readable notes
go to stderr. Secrets (the enrollment token, the session token, the private key) are never
printed.

Usage:
  agent.py --target 127.0.0.1:7070 --token agwe_… --name py-agent-1 [--register-only]

Exit codes:
  0   --register-only: registered (and, if ACTIVE, nothing else to do)
  10  revoked: told by GoAway REVOKED on the ControlStream; handshake then refused (PERMISSION_DENIED)
  11  revoked: the gateway answers ControlStream with UNIMPLEMENTED, so revocation was noticed by
      PERMISSION_DENIED on UploadHeartbeat; handshake then refused (PERMISSION_DENIED)
  12  revoked, but the ControlStream ended with PERMISSION_DENIED without a GoAway REVOKED first
  1   unexpected error
  2   usage
  3   timed out (approval, or waiting for the stream to end)
  4   the gateway broke the contract (code mismatch, handshake after revocation not refused, …)
"""

import argparse
import json
import os
import platform
import queue
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import agw_protocol as proto  # noqa: E402
import agw_stubs  # noqa: E402

EXIT_REGISTERED = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_CONTRACT = 4
EXIT_REVOKED = 10
EXIT_REVOKED_NO_STREAM = 11
EXIT_REVOKED_WITHOUT_GOAWAY = 12

AGENT_VERSION = "0.0.0-interop.python"
START = time.monotonic()


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}, sort_keys=True), flush=True)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Exit(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def code_name(err) -> str:
    code = err.code() if hasattr(err, "code") else None
    return code.name if code is not None else "UNKNOWN"


def retry_after_seconds(message: str):
    match = re.search(r"retry after (\d+(?:\.\d+)?) ?s", message or "")
    return float(match.group(1)) if match else None


_STATUS_CLASS = None


def google_rpc_status_class():
    """google.rpc.Status (code, message, repeated Any details), built from a descriptor at run
    time: the gRPC error details travel in the `grpc-status-details-bin` trailer as this message,
    and proto/ does not ship google/rpc/status.proto."""
    global _STATUS_CLASS
    if _STATUS_CLASS is None:
        from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

        pool = descriptor_pool.DescriptorPool()
        pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
        fdp = descriptor_pb2.FileDescriptorProto(name="google/rpc/status.proto", package="google.rpc", syntax="proto3",
                                                 dependency=["google/protobuf/any.proto"])
        msg = fdp.message_type.add(name="Status")
        F = descriptor_pb2.FieldDescriptorProto
        msg.field.add(name="code", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
        msg.field.add(name="message", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        msg.field.add(name="details", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".google.protobuf.Any")
        pool.Add(fdp)
        descriptor = pool.FindMessageTypeByName("google.rpc.Status")
        factory = message_factory.MessageFactory(pool)
        _STATUS_CLASS = factory.GetMessageClass(descriptor) if hasattr(factory, "GetMessageClass") else factory.GetPrototype(descriptor)
    return _STATUS_CLASS


def violations_of(err):
    """The buf.validate.Violations detail of a gRPC error, as [{field, rule_id, message}]."""
    from buf.validate import validate_pb2

    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    if not raw:
        return None
    status = google_rpc_status_class()()
    status.ParseFromString(raw)
    found = []
    for detail in status.details:
        if detail.type_url.rsplit("/", 1)[-1] != "buf.validate.Violations":
            continue
        violations = validate_pb2.Violations()
        violations.ParseFromString(detail.value)
        for v in violations.violations:
            found.append({
                "field": ".".join(e.field_name for e in v.field.elements),
                "rule_id": v.rule_id,
                "message": v.message,
            })
    return found


def jittered(seconds: float) -> float:
    """Equal jitter: half fixed, half random."""
    return seconds / 2 + random.uniform(0, seconds / 2)


def host_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(machine, machine)


class Agent:
    def __init__(self, args):
        self.args = args
        self.deadline = time.monotonic() + args.timeout
        import grpc
        from agentgateway.v1 import (
            common_pb2,
            control_pb2,
            gateway_pb2,
            gateway_pb2_grpc,
            ingest_pb2,
        )

        self.grpc = grpc
        self.common_pb2 = common_pb2
        self.control_pb2 = control_pb2
        self.gateway_pb2 = gateway_pb2
        self.ingest_pb2 = ingest_pb2
        self.channel = grpc.insecure_channel(args.target)
        self.stub = gateway_pb2_grpc.AgentGatewayServiceStub(self.channel)
        self.identity = proto.Identity.generate()
        self.agent_id = None
        self.session_token = None
        self.boot_id = uuid.uuid4().hex[:12]
        self.heartbeat_interval_s = 30.0
        self.version = AGENT_VERSION  # changes when a rollout is applied
        self.pinned_release_keys = {bytes.fromhex(k) for k in args.release_key}
        self.last_applied_sequence = 0
        self.applied = set()
        self.distrusted_peers = {}

    # ---- helpers -------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def auth_metadata(self):
        return (("authorization", f"Bearer {self.session_token}"),)

    def host_facts(self):
        return self.common_pb2.HostFacts(
            hostname=socket.gethostname()[:253],
            os=sys.platform,
            arch=host_arch(),
            agent_version=self.version,
            labels={"lang": "python", "interop": "true"},
        )

    def call_unary(self, method, request, metadata=None, attempts=5):
        """A unary call with a per-call deadline; waits out RESOURCE_EXHAUSTED retry hints."""
        for attempt in range(attempts):
            try:
                return method(request, metadata=metadata, timeout=15)
            except self.grpc.RpcError as err:
                if err.code() == self.grpc.StatusCode.RESOURCE_EXHAUSTED and attempt + 1 < attempts:
                    wait = retry_after_seconds(err.details()) or 1.0
                    emit("rate_limited", retry_after_s=wait)
                    time.sleep(wait)
                    continue
                raise
        raise AssertionError("unreachable")

    # ---- error details -------------------------------------------------------------------

    def check_validation_error(self):
        """A Register with a 31-byte key must answer INVALID_ARGUMENT naming the field, with a
        buf.validate.Violations detail a non-TypeScript client can decode."""
        request = self.gateway_pb2.RegisterRequest(
            enrollment_token="agwe_" + "A" * 43,
            identity_public_key=bytes(31),
            name="py-invalid",
            proof_signature=bytes(64),
        )
        try:
            self.stub.Register(request, timeout=15)
        except self.grpc.RpcError as err:
            if err.code() == self.grpc.StatusCode.UNAVAILABLE:
                raise
            emit("validation_error", code=code_name(err), message=err.details(), violations=violations_of(err))
            if err.code() != self.grpc.StatusCode.INVALID_ARGUMENT:
                raise Exit(EXIT_CONTRACT, f"Register with a 31-byte key answered {code_name(err)}, expected INVALID_ARGUMENT") from err
            return
        raise Exit(EXIT_CONTRACT, "Register with a 31-byte key succeeded")

    # ---- enrollment ----------------------------------------------------------------------

    def register(self):
        args = self.args
        key = self.identity.public_key
        local_code = proto.verification_code(key)
        emit("identity", public_key=key.hex(), verification_code=local_code)
        request = self.gateway_pb2.RegisterRequest(
            enrollment_token=args.token,
            identity_public_key=key,
            name=args.name,
            host=self.host_facts(),
            proof_signature=self.identity.sign(proto.register_transcript(args.token, key, args.name)),
        )
        response = self.call_unary(self.stub.Register, request)
        self.agent_id = response.agent_id
        state = self.common_pb2.AgentState.Name(response.state)
        emit(
            "registered",
            agent_id=response.agent_id,
            state=state,
            tenant_id=response.tenant_id,
            verification_code=response.verification_code,
            local_verification_code=local_code,
        )
        note(f"Verification code: {response.verification_code}  (agent {response.agent_id}, {state})")
        if proto.normalize_verification_code(response.verification_code) != proto.normalize_verification_code(local_code):
            raise Exit(EXIT_CONTRACT, f"gateway verification code {response.verification_code} != locally derived {local_code}")
        return response

    # ---- handshake -----------------------------------------------------------------------

    def handshake_once(self):
        """Begin + Complete. Raises grpc.RpcError on any refusal."""
        key = self.identity.public_key
        begin = self.stub.BeginAuthHandshake(
            self.gateway_pb2.BeginAuthHandshakeRequest(agent_id=self.agent_id, identity_public_key=key),
            timeout=15,
        )
        transcript = proto.auth_transcript(begin.challenge_id, begin.nonce, self.agent_id, key)
        return self.stub.CompleteAuthHandshake(
            self.gateway_pb2.CompleteAuthHandshakeRequest(
                challenge_id=begin.challenge_id,
                agent_id=self.agent_id,
                signature=self.identity.sign(transcript),
            ),
            timeout=15,
        )

    def handshake(self):
        """Handshakes, waiting with backoff while the agent awaits approval."""
        delay = 0.25
        attempt = 0
        approval_deadline = time.monotonic() + self.args.approval_timeout
        while True:
            attempt += 1
            try:
                response = self.handshake_once()
                break
            except self.grpc.RpcError as err:
                code = err.code()
                if code == self.grpc.StatusCode.FAILED_PRECONDITION and "awaiting approval" in (err.details() or ""):
                    wait = jittered(delay)
                    if time.monotonic() + wait > approval_deadline:
                        raise Exit(EXIT_TIMEOUT, "still awaiting approval") from err
                    emit("awaiting_approval", attempt=attempt, retry_in_s=round(wait, 3), message=err.details())
                    time.sleep(wait)
                    delay = min(delay * 1.6, 3.0)
                    continue
                if code == self.grpc.StatusCode.RESOURCE_EXHAUSTED:
                    wait = retry_after_seconds(err.details()) or 1.0
                    emit("rate_limited", retry_after_s=wait, message=err.details())
                    time.sleep(wait)
                    continue
                raise
        self.session_token = response.session_token
        self.heartbeat_interval_s = response.heartbeat_interval.ToTimedelta().total_seconds() or 30.0
        emit(
            "session",
            attempts=attempt,
            expires_at=response.expires_at.ToJsonString(),
            heartbeat_interval_s=response.heartbeat_interval.ToTimedelta().total_seconds(),
            token_prefix=response.session_token[:5],
        )
        return response

    # ---- uploads -------------------------------------------------------------------------

    def heartbeat(self):
        from google.protobuf.duration_pb2 import Duration

        uptime = Duration()
        uptime.FromNanoseconds(int((time.monotonic() - START) * 1e9))
        request = self.ingest_pb2.UploadHeartbeatRequest(
            status=self.ingest_pb2.AGENT_STATUS_HEALTHY,
            agent_version=self.version,
            uptime=uptime,
            host=self.host_facts(),
        )
        return self.call_unary(self.stub.UploadHeartbeat, request, metadata=self.auth_metadata())

    def upload_heartbeat(self):
        response = self.heartbeat()
        emit(
            "heartbeat",
            status="OK",
            server_time=response.server_time.ToJsonString(),
            next_heartbeat_interval_s=response.next_heartbeat_interval.ToTimedelta().total_seconds(),
        )

    def upload_idempotent(self, kind: str, method, request):
        """Uploads, then uploads the same request again: the retry must count as duplicates."""
        try:
            first = self.call_unary(method, request, metadata=self.auth_metadata())
        except self.grpc.RpcError as err:
            if err.code() == self.grpc.StatusCode.UNIMPLEMENTED:
                emit(kind, status="UNIMPLEMENTED", message=err.details())
                return
            raise
        second = self.call_unary(method, request, metadata=self.auth_metadata())
        emit(
            kind,
            status="OK",
            accepted=first.accepted,
            duplicates=first.duplicates,
            retry_accepted=second.accepted,
            retry_duplicates=second.duplicates,
        )

    def upload_telemetry(self):
        from google.protobuf.timestamp_pb2 import Timestamp

        now = Timestamp()
        now.GetCurrentTime()
        points = [
            self.ingest_pb2.MetricPoint(
                id=f"{self.boot_id}-m{i}",
                name=name,
                labels={"core": str(i)},
                value=value,
                observed_at=now,
            )
            for i, (name, value) in enumerate([("cpu.utilization", 0.42), ("mem.used_bytes", 123456789.0), ("py.interop", 1.0)])
        ]
        self.upload_idempotent("telemetry", self.stub.UploadTelemetry, self.ingest_pb2.UploadTelemetryRequest(points=points))

    def upload_events(self):
        from google.protobuf.timestamp_pb2 import Timestamp

        now = Timestamp()
        now.GetCurrentTime()
        events = [
            self.ingest_pb2.Event(
                id=f"{self.boot_id}-e0",
                type="agent.started",
                severity=self.ingest_pb2.EVENT_SEVERITY_INFO,
                message="python interop agent started",
                attributes={"lang": "python"},
                occurred_at=now,
            ),
            self.ingest_pb2.Event(
                id=f"{self.boot_id}-e1",
                type="process.crashed",
                severity=self.ingest_pb2.EVENT_SEVERITY_WARNING,
                message="a child crashed (synthetic)",
                payload=bytes(range(256)),
                occurred_at=now,
            ),
        ]
        self.upload_idempotent("events", self.stub.UploadEvents, self.ingest_pb2.UploadEventsRequest(events=events))

    # ---- ControlStream -------------------------------------------------------------------

    def handle_command(self, command, send):
        pb = self.control_pb2
        kind = command.WhichOneof("payload")
        emit_fields = {"sequence": command.sequence, "command_id": command.command_id, "kind": kind or "unknown"}
        if kind == "peer_revoked":
            emit_fields["peer_agent_id"] = command.peer_revoked.agent_id
            emit_fields["peer_public_key"] = command.peer_revoked.identity_public_key.hex()
        emit("command", **emit_fields)
        if command.sequence in self.applied or command.sequence <= self.last_applied_sequence:
            status, reason = pb.ACK_STATUS_OK, ""  # already applied: ack again, do not re-apply
            emit("command_redelivered", sequence=command.sequence)
        elif kind == "peer_revoked":
            self.distrusted_peers[command.peer_revoked.agent_id] = command.peer_revoked.identity_public_key
            status, reason = pb.ACK_STATUS_OK, ""
        elif kind == "rollout":
            status, reason = self.apply_rollout(command.rollout, send)
        else:
            status, reason = pb.ACK_STATUS_UNSUPPORTED, ""
        if command.sequence not in self.applied:
            self.applied.add(command.sequence)
        self.last_applied_sequence = max(self.last_applied_sequence, command.sequence)
        send(pb.ControlStreamRequest(ack=pb.CommandAck(sequence=command.sequence, status=status, reason=reason)))
        emit("ack", sequence=command.sequence, status=pb.AckStatus.Name(status), reason=reason)

    def apply_rollout(self, directive, send):
        """docs/protocol.md, "Release manifests": pinned key, signature over the manifest bytes as
        received, only then decode. This agent has no real update hook: "installing" a verified
        release means running its version from now on (reported in heartbeats and hellos)."""
        pb = self.control_pb2

        def progress(stage, message=""):
            send(pb.ControlStreamRequest(rollout_progress=pb.RolloutProgress(
                rollout_id=directive.rollout_id, stage=stage, message=message)))
            emit("rollout_progress", rollout_id=directive.rollout_id, stage=pb.RolloutStage.Name(stage), message=message)

        signed = directive.manifest
        progress(pb.ROLLOUT_STAGE_RECEIVED)
        if signed.release_public_key not in self.pinned_release_keys:
            reason = f"release key {signed.release_public_key.hex()[:16]}… is not pinned by this agent"
        elif not proto.verify(signed.release_public_key, signed.signature, proto.release_manifest_transcript(signed.manifest)):
            reason = "release manifest signature does not verify"
        else:
            reason = ""
        if reason:
            progress(pb.ROLLOUT_STAGE_FAILED, reason)
            return pb.ACK_STATUS_FAILED, reason
        from agentgateway.v1 import release_pb2

        manifest = release_pb2.ReleaseManifest()
        manifest.ParseFromString(signed.manifest)
        progress(pb.ROLLOUT_STAGE_VERIFIED)
        progress(pb.ROLLOUT_STAGE_APPLYING)
        emit("rollout_apply", rollout_id=directive.rollout_id, wave=directive.wave, version=manifest.version,
             artifact_url=manifest.artifact_url, artifact_sha256=manifest.artifact_sha256.hex(), artifact_size=manifest.artifact_size)
        self.version = manifest.version
        progress(pb.ROLLOUT_STAGE_SUCCEEDED)
        # The gateway counts the member as done when a heartbeat reports the target version.
        try:
            self.heartbeat()
            emit("heartbeat", status="OK", version=self.version, after_rollout=True)
        except self.grpc.RpcError as err:
            emit("heartbeat", status=code_name(err), message=err.details(), after_rollout=True)
        return pb.ACK_STATUS_OK, ""

    def control_stream_once(self):
        """One stream. Returns ("go_away", GoAway) or ("error", RpcError) or ("ended", None)."""
        pb = self.control_pb2
        outbox = queue.Queue()

        def requests():
            while True:
                item = outbox.get()
                if item is None:
                    return
                yield item

        send = outbox.put
        send(pb.ControlStreamRequest(hello=pb.AgentHello(
            agent_version=self.version,
            last_applied_sequence=self.last_applied_sequence,
            capabilities=["peer_revoked", "rollout"],
        )))
        call = self.stub.ControlStream(requests(), metadata=self.auth_metadata())
        timer = threading.Timer(max(self.remaining(), 0.1), call.cancel)
        timer.daemon = True
        timer.start()
        emit("stream_open", last_applied_sequence=self.last_applied_sequence)
        first = True
        try:
            for message in call:
                kind = message.WhichOneof("kind")
                if first and kind != "welcome":
                    emit("contract_violation", detail=f"first stream message is {kind}, expected welcome")
                first = False
                if kind == "welcome":
                    w = message.welcome
                    emit(
                        "welcome",
                        replica_id=w.replica_id,
                        server_time=w.server_time.ToJsonString(),
                        heartbeat_interval_s=w.heartbeat_interval.ToTimedelta().total_seconds(),
                        max_stream_age_s=w.max_stream_age.ToTimedelta().total_seconds(),
                    )
                elif kind == "command":
                    self.handle_command(message.command, send)
                elif kind == "ping":
                    emit("ping", nonce=str(message.ping.nonce))
                    send(pb.ControlStreamRequest(pong=pb.Pong(nonce=message.ping.nonce)))
                    emit("pong", nonce=str(message.ping.nonce))
                elif kind == "go_away":
                    g = message.go_away
                    emit(
                        "go_away",
                        reason=pb.GoAwayReason.Name(g.reason) if g.reason in pb.GoAwayReason.values() else str(g.reason),
                        message=g.message,
                        reconnect_after_s=g.reconnect_after.ToTimedelta().total_seconds(),
                    )
                    # Act on the reason, not on how the stream then ends.
                    outbox.put(None)
                    call.cancel()
                    return "go_away", g
                else:
                    emit("stream_unknown_message", kind=str(kind))
            return "ended", None
        except self.grpc.RpcError as err:
            return "error", err
        finally:
            timer.cancel()
            outbox.put(None)

    def run_control_stream(self):
        """Keeps a ControlStream open until revocation (or the overall deadline)."""
        pb = self.control_pb2
        backoff = 0.5
        while True:
            if self.remaining() <= 0:
                raise Exit(EXIT_TIMEOUT, "stream deadline reached before revocation")
            outcome, detail = self.control_stream_once()
            if outcome == "go_away":
                reason = detail.reason
                if reason == pb.GO_AWAY_REASON_REVOKED:
                    return "go_away", detail.message
                if reason == pb.GO_AWAY_REASON_SUPERSEDED:
                    note("GoAway SUPERSEDED: another process is using this identity")
                    raise Exit(EXIT_CONTRACT, "stream superseded by another process")
                if reason == pb.GO_AWAY_REASON_SESSION_ENDED:
                    self.handshake()
                wait = detail.reconnect_after.ToTimedelta().total_seconds()
                time.sleep(min(max(wait, 0.0), 30.0))
                continue
            if outcome == "ended":
                emit("stream_ended", detail="stream ended without GoAway; reconnecting")
                time.sleep(jittered(backoff))
                backoff = min(backoff * 2, 10)
                continue
            err = detail
            code = err.code()
            if code == self.grpc.StatusCode.UNIMPLEMENTED:
                emit("control_stream", status="UNIMPLEMENTED", message=err.details())
                return "unimplemented", err.details()
            if code == self.grpc.StatusCode.CANCELLED and self.remaining() <= 0:
                raise Exit(EXIT_TIMEOUT, "stream deadline reached before revocation")
            if code == self.grpc.StatusCode.PERMISSION_DENIED:
                emit("stream_error", code=code.name, message=err.details())
                return "permission_denied", err.details()
            if code == self.grpc.StatusCode.UNAUTHENTICATED:
                emit("stream_error", code=code.name, message=err.details())
                self.handshake()
                continue
            emit("stream_error", code=code.name, message=err.details())
            time.sleep(jittered(backoff))
            backoff = min(backoff * 2, 10)

    def start_heartbeats(self, interval_s: float):
        """Heartbeats every interval while the stream runs; stops on PERMISSION_DENIED."""
        stop = threading.Event()

        def loop():
            while not stop.wait(max(interval_s, 1.0)):
                try:
                    self.heartbeat()
                    emit("heartbeat", status="OK", periodic=True)
                except self.grpc.RpcError as err:
                    emit("heartbeat", status=code_name(err), periodic=True, message=err.details())
                    if err.code() == self.grpc.StatusCode.PERMISSION_DENIED:
                        return

        threading.Thread(target=loop, name="heartbeats", daemon=True).start()
        return stop

    def wait_for_revocation_by_heartbeat(self):
        """Fallback while ControlStream is UNIMPLEMENTED: heartbeat until PERMISSION_DENIED."""
        while self.remaining() > 0:
            try:
                self.heartbeat()
            except self.grpc.RpcError as err:
                if err.code() == self.grpc.StatusCode.PERMISSION_DENIED:
                    emit("heartbeat", status="PERMISSION_DENIED", message=err.details())
                    return err.details()
                if err.code() == self.grpc.StatusCode.UNAUTHENTICATED:
                    emit("heartbeat", status="UNAUTHENTICATED", message=err.details())
                    self.handshake()
                    continue
                raise
            time.sleep(0.5)
        raise Exit(EXIT_TIMEOUT, "deadline reached before revocation")

    # ---- after revocation ----------------------------------------------------------------

    def check_refused_after_revocation(self):
        """A revoked identity must be refused: handshake and Register answer PERMISSION_DENIED."""
        try:
            self.handshake_once()
            emit("post_revocation_handshake", code="OK")
            raise Exit(EXIT_CONTRACT, "handshake succeeded after revocation")
        except self.grpc.RpcError as err:
            emit("post_revocation_handshake", code=code_name(err), message=err.details())
            if err.code() != self.grpc.StatusCode.PERMISSION_DENIED:
                raise Exit(EXIT_CONTRACT, f"handshake after revocation answered {code_name(err)}, expected PERMISSION_DENIED") from err
        if self.args.check_reregister:
            key = self.identity.public_key
            try:
                self.stub.Register(self.gateway_pb2.RegisterRequest(
                    enrollment_token=self.args.token,
                    identity_public_key=key,
                    name=self.args.name,
                    proof_signature=self.identity.sign(proto.register_transcript(self.args.token, key, self.args.name)),
                ), timeout=15)
                emit("post_revocation_register", code="OK")
                raise Exit(EXIT_CONTRACT, "Register with a revoked key succeeded")
            except self.grpc.RpcError as err:
                emit("post_revocation_register", code=code_name(err), message=err.details())
                if err.code() != self.grpc.StatusCode.PERMISSION_DENIED:
                    raise Exit(EXIT_CONTRACT, f"Register with a revoked key answered {code_name(err)}, expected PERMISSION_DENIED") from err

    # ---- main ----------------------------------------------------------------------------

    def run(self) -> int:
        if not self.args.register_only:
            self.check_validation_error()
        registration = self.register()
        if self.args.register_only:
            return EXIT_REGISTERED
        if registration.state == self.common_pb2.AGENT_STATE_PENDING_APPROVAL:
            note("Waiting for an operator to approve this agent (compare the verification code).")
        self.handshake()
        self.upload_heartbeat()
        self.upload_telemetry()
        self.upload_events()
        heartbeats = self.start_heartbeats(self.heartbeat_interval_s)
        try:
            how, message = self.run_control_stream()
        finally:
            heartbeats.set()
        if how == "go_away":
            emit("revoked", via="go_away", message=message)
            self.check_refused_after_revocation()
            return EXIT_REVOKED
        if how == "unimplemented":
            message = self.wait_for_revocation_by_heartbeat()
            emit("revoked", via="heartbeat", message=message)
            self.check_refused_after_revocation()
            return EXIT_REVOKED_NO_STREAM
        emit("revoked", via="stream_permission_denied", message=message)
        self.check_refused_after_revocation()
        return EXIT_REVOKED_WITHOUT_GOAWAY


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="gateway host:port (cleartext HTTP/2)")
    parser.add_argument("--token", help="enrollment token (agwe_…); default: $AGW_ENROLLMENT_TOKEN")
    parser.add_argument("--name", default=f"py-agent-{uuid.uuid4().hex[:6]}", help="agent name")
    parser.add_argument("--register-only", action="store_true", help="register, print the result and exit 0")
    parser.add_argument("--approval-timeout", type=float, default=120, help="seconds to wait for approval")
    parser.add_argument("--timeout", type=float, default=300, help="overall seconds before giving up")
    parser.add_argument("--check-reregister", action="store_true",
                        help="after revocation, also check Register with the same key (and token) is PERMISSION_DENIED")
    parser.add_argument("--release-key", action="append", default=[], metavar="HEX",
                        help="pin a release public key (32 bytes, hex); rollouts signed by other keys are refused")
    parser.add_argument("--gen-dir", help="where to generate stubs (default: a temp dir removed at exit)")
    args = parser.parse_args(argv)
    args.token = args.token or os.environ.get("AGW_ENROLLMENT_TOKEN")
    if not args.token:
        parser.print_usage(sys.stderr)
        note("agent.py: an enrollment token is required (--token or $AGW_ENROLLMENT_TOKEN)")
        return EXIT_USAGE
    # SIGTERM (the test harness stopping us) exits normally, so the temp stub dir is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stub_dir = agw_stubs.generate(args.gen_dir)
    emit("stubs", dir=stub_dir)
    code = EXIT_ERROR
    reason = ""
    try:
        agent = Agent(args)
        code = agent.run()
        reason = "done"
    except Exit as exc:
        code, reason = exc.code, exc.reason
    except Exception as exc:  # any RpcError that was not part of the plan lands here
        import grpc

        if isinstance(exc, grpc.RpcError):
            emit("error", code=code_name(exc), message=exc.details())
            reason = f"{code_name(exc)}: {exc.details()}"
        else:
            emit("error", code="EXCEPTION", message=repr(exc))
            reason = repr(exc)
        code = EXIT_ERROR
    emit("exit", code=code, reason=reason)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
