// Command agw-go-client is an AgentGateway agent in Go, written from proto/ and
// docs/protocol.md alone: register with an enrollment token (proof of possession over the
// register transcript), handshake (auth transcript), and upload a heartbeat. Native gRPC over
// cleartext HTTP/2 with Debian's grpc-go 1.33 and golang/protobuf 1.3.5 (GOPATH mode; see
// build.sh). It also checks its transcript and verification-code code against test/vectors.
//
// Progress goes to stdout as JSON lines ({"event": …}). Exit 0 on success, 1 on failure,
// 2 on usage errors. Secrets are never printed.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	agw "agwinterop/gen/agentgateway/v1"

	"github.com/golang/protobuf/ptypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	registerContext         = "agentgateway/v1/register"
	authContext             = "agentgateway/v1/auth"
	verificationCodeContext = "agentgateway/v1/verification-code"
	crockford               = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	agentVersion            = "0.0.0-interop.go"
)

// transcript = u32be(len(context)) || context || for each field: u32be(len(field)) || field
func transcript(context string, fields ...[]byte) []byte {
	var buf bytes.Buffer
	for _, part := range append([][]byte{[]byte(context)}, fields...) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		buf.Write(n[:])
		buf.Write(part)
	}
	return buf.Bytes()
}

func registerTranscript(token string, key []byte, name string) []byte {
	return transcript(registerContext, []byte(token), key, []byte(name))
}

func authTranscript(challengeID string, nonce []byte, agentID string, key []byte) []byte {
	return transcript(authContext, []byte(challengeID), nonce, []byte(agentID), key)
}

func verificationCode(key []byte) string {
	digest := sha256.Sum256(append([]byte(verificationCodeContext), key...))
	var bits uint64
	for _, b := range digest[:5] {
		bits = bits<<8 | uint64(b)
	}
	code := make([]byte, 8)
	for i := 0; i < 8; i++ {
		code[i] = crockford[(bits>>(35-5*uint(i)))&31]
	}
	return string(code[:4]) + "-" + string(code[4:])
}

func emit(event string, fields map[string]interface{}) {
	if fields == nil {
		fields = map[string]interface{}{}
	}
	fields["event"] = event
	line, _ := json.Marshal(fields)
	fmt.Println(string(line))
}

type failure struct{ msg string }

func fail(format string, args ...interface{}) { panic(failure{fmt.Sprintf(format, args...)}) }

func codeOf(err error) codes.Code { return status.Code(err) }

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		fail("bad hex in vectors: %v", err)
	}
	return b
}

// checkVectors recomputes the valid register/auth cases and every verification code.
func checkVectors(dir string) {
	type vectorFile struct {
		Cases []map[string]interface{} `json:"cases"`
	}
	load := func(name string) *vectorFile {
		raw, err := ioutil.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil
		}
		var f vectorFile
		if err := json.Unmarshal(raw, &f); err != nil {
			fail("%s: %v", name, err)
		}
		return &f
	}
	str := func(c map[string]interface{}, k string) string { s, _ := c[k].(string); return s }
	checked := 0
	if f := load("register.json"); f != nil {
		for _, c := range f.Cases {
			t := registerTranscript(str(c, "enrollment_token"), mustHex(str(c, "identity_public_key")), str(c, "name"))
			if hex.EncodeToString(t) != str(c, "transcript") {
				fail("register.json %s: transcript mismatch", str(c, "id"))
			}
			if valid, _ := c["valid"].(bool); valid {
				sig := ed25519.Sign(ed25519.NewKeyFromSeed(mustHex(str(c, "private_key_seed"))), t)
				if hex.EncodeToString(sig) != str(c, "proof_signature") {
					fail("register.json %s: signature mismatch", str(c, "id"))
				}
			}
			checked++
		}
	}
	if f := load("auth.json"); f != nil {
		for _, c := range f.Cases {
			t := authTranscript(str(c, "challenge_id"), mustHex(str(c, "nonce")), str(c, "agent_id"), mustHex(str(c, "identity_public_key")))
			if hex.EncodeToString(t) != str(c, "transcript") {
				fail("auth.json %s: transcript mismatch", str(c, "id"))
			}
			valid, _ := c["valid"].(bool)
			if ed25519.Verify(mustHex(str(c, "identity_public_key")), t, mustHex(str(c, "signature"))) != valid {
				fail("auth.json %s: verify != %v", str(c, "id"), valid)
			}
			checked++
		}
	}
	if f := load("verification-code.json"); f != nil {
		for _, c := range f.Cases {
			if got := verificationCode(mustHex(str(c, "public_key"))); got != str(c, "code") {
				fail("verification-code.json %s: got %s want %s", str(c, "id"), got, str(c, "code"))
			}
			checked++
		}
	}
	if checked == 0 {
		emit("vectors", map[string]interface{}{"status": "skipped", "message": "no vectors in " + dir})
		return
	}
	emit("vectors", map[string]interface{}{"status": "OK", "cases": checked})
}

func run() (code int) {
	target := flag.String("target", "", "gateway host:port (cleartext HTTP/2)")
	token := flag.String("token", os.Getenv("AGW_ENROLLMENT_TOKEN"), "enrollment token (agwe_…)")
	name := flag.String("name", "go-agent", "agent name")
	vectors := flag.String("vectors", "", "test/vectors directory to check against first (optional)")
	approvalTimeout := flag.Duration("approval-timeout", 60*time.Second, "how long to wait for operator approval")
	flag.Parse()
	if *target == "" || *token == "" {
		flag.Usage()
		return 2
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			emit("error", map[string]interface{}{"message": f.msg})
			emit("exit", map[string]interface{}{"code": 1})
			code = 1
		}
	}()
	if *vectors != "" {
		checkVectors(*vectors)
	}

	conn, err := grpc.Dial(*target, grpc.WithInsecure(), grpc.WithBlock(), grpc.WithTimeout(10*time.Second))
	if err != nil {
		fail("dial %s: %v", *target, err)
	}
	defer conn.Close()
	client := agw.NewAgentGatewayServiceClient(conn)
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 15*time.Second)
	}

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		fail("keygen: %v", err)
	}
	key := []byte(pub)
	localCode := verificationCode(key)
	emit("identity", map[string]interface{}{"public_key": hex.EncodeToString(key), "verification_code": localCode})

	host := &agw.HostFacts{Hostname: "go-interop", Os: runtime.GOOS, Arch: runtime.GOARCH, AgentVersion: agentVersion,
		Labels: map[string]string{"lang": "go"}}
	ctx, cancel := call()
	reg, err := client.Register(ctx, &agw.RegisterRequest{
		EnrollmentToken:   *token,
		IdentityPublicKey: key,
		Name:              *name,
		Host:              host,
		ProofSignature:    ed25519.Sign(priv, registerTranscript(*token, key, *name)),
	})
	cancel()
	if err != nil {
		fail("Register: %s: %s", codeOf(err), status.Convert(err).Message())
	}
	emit("registered", map[string]interface{}{"agent_id": reg.AgentId, "state": reg.State.String(),
		"verification_code": reg.VerificationCode, "local_verification_code": localCode, "tenant_id": reg.TenantId})
	if reg.VerificationCode != localCode {
		fail("verification code %s from the gateway != %s derived locally", reg.VerificationCode, localCode)
	}

	// Handshake; wait with backoff while the agent awaits approval.
	var session *agw.CompleteAuthHandshakeResponse
	delay := 250 * time.Millisecond
	deadline := time.Now().Add(*approvalTimeout)
	for attempt := 1; ; attempt++ {
		ctx, cancel := call()
		begin, err := client.BeginAuthHandshake(ctx, &agw.BeginAuthHandshakeRequest{AgentId: reg.AgentId, IdentityPublicKey: key})
		if err == nil {
			session, err = client.CompleteAuthHandshake(ctx, &agw.CompleteAuthHandshakeRequest{
				ChallengeId: begin.ChallengeId,
				AgentId:     reg.AgentId,
				Signature:   ed25519.Sign(priv, authTranscript(begin.ChallengeId, begin.Nonce, reg.AgentId, key)),
			})
		}
		cancel()
		if err == nil {
			break
		}
		msg := status.Convert(err).Message()
		if codeOf(err) == codes.FailedPrecondition && strings.Contains(msg, "awaiting approval") && time.Now().Add(delay).Before(deadline) {
			emit("awaiting_approval", map[string]interface{}{"attempt": attempt})
			time.Sleep(delay)
			if delay *= 2; delay > 3*time.Second {
				delay = 3 * time.Second
			}
			continue
		}
		fail("handshake: %s: %s", codeOf(err), msg)
	}
	expires, _ := ptypes.Timestamp(session.ExpiresAt)
	emit("session", map[string]interface{}{"expires_at": expires.Format(time.RFC3339), "token_prefix": session.SessionToken[:5]})

	// Without the session the gateway must refuse the upload.
	ctx, cancel = call()
	_, err = client.UploadHeartbeat(ctx, &agw.UploadHeartbeatRequest{Status: agw.AgentStatus_AGENT_STATUS_HEALTHY})
	cancel()
	if codeOf(err) != codes.Unauthenticated {
		fail("UploadHeartbeat without a session answered %s, want Unauthenticated", codeOf(err))
	}
	emit("unauthenticated_heartbeat", map[string]interface{}{"code": codeOf(err).String()})

	ctx, cancel = call()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+session.SessionToken)
	hb, err := client.UploadHeartbeat(ctx, &agw.UploadHeartbeatRequest{
		Status:       agw.AgentStatus_AGENT_STATUS_HEALTHY,
		AgentVersion: agentVersion,
		Uptime:       ptypes.DurationProto(3 * time.Second),
		Host:         host,
	})
	cancel()
	if err != nil {
		fail("UploadHeartbeat: %s: %s", codeOf(err), status.Convert(err).Message())
	}
	serverTime, _ := ptypes.Timestamp(hb.ServerTime)
	next, _ := ptypes.Duration(hb.NextHeartbeatInterval)
	emit("heartbeat", map[string]interface{}{"status": "OK", "server_time": serverTime.Format(time.RFC3339Nano),
		"next_heartbeat_interval_s": next.Seconds()})
	emit("exit", map[string]interface{}{"code": 0})
	return 0
}

func main() { os.Exit(run()) }
