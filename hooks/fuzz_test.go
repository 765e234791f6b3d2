package hooks_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/chat"
	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/internal/token"
)

// fuzzToken is a valid token of alice on every test server (testutil's JWT
// key), so the seeds include CONNECTs that must be accepted.
func fuzzToken(f *testing.F) (string, *token.Signer) {
	s, err := token.NewSigner([]byte(testutil.TestJWTSecret))
	if err != nil {
		f.Fatal(err)
	}
	tok, _, err := s.Mint("alice", time.Now(), 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	return tok, s
}

func encodeConnect(f *testing.F, version byte, clientID, user, pass, willTopic string, clean bool) []byte {
	name := "MQTT"
	if version == 3 {
		name = "MQIsdp"
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{ProtocolName: []byte(name), Clean: clean, Keepalive: 30, ClientIdentifier: clientID,
			UsernameFlag: user != "", Username: []byte(user), PasswordFlag: pass != "", Password: []byte(pass)}}
	if willTopic != "" {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillQos = true, willTopic, []byte("w"), 1
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzConnect sends arbitrary bytes as the first packet to a real server.
// Whatever they are, the server survives, and it accepts a connection only
// when mqim's rules allow it: username alice with alice's token, client id
// "alice/{device}", and no will where alice may not publish (anything under
// im/, and, topics being closed, anything else).
func FuzzConnect(f *testing.F) {
	tok, signer := fuzzToken(f)
	for _, v := range []byte{3, 4, 5} {
		f.Add(encodeConnect(f, v, "alice/phone", "alice", tok, "", true))
		f.Add(encodeConnect(f, v, "bob/phone", "alice", tok, "", true))
		f.Add(encodeConnect(f, v, "", "alice", tok, "", true))
		f.Add(encodeConnect(f, v, "alice/phone", "alice", tok, "im/u/bob", true))
		f.Add(encodeConnect(f, v, "alice/phone", "alice", "bad", "", false))
		f.Add(encodeConnect(f, v, "inline", "alice", tok, "", true))
	}
	f.Add([]byte{0x10, 0x00})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	srv := testutil.StartServer(f, "sqlite")
	srv.User(f, "alice")
	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.DialTimeout("tcp", srv.MQTTAddr, time.Second)
		if err != nil {
			t.Fatalf("server gone: %v", err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = conn.Write(in)
		_ = conn.(*net.TCPConn).CloseWrite() // a partial packet ends here
		var hdr [2]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
				return // closed without an answer
			}
			t.Fatalf("no answer and no close: %v", err)
		}
		if hdr[0] != 0x20 {
			t.Fatalf("first packet type 0x%02x, want a CONNACK", hdr[0])
		}
		rest := make([]byte, hdr[1])
		if _, err := io.ReadFull(conn, rest); err != nil || len(rest) < 2 {
			return
		}
		if rest[1] != 0 {
			return // refused
		}
		pk, ok := decodeConnect(in)
		if !ok {
			t.Fatalf("accepted a CONNECT that does not decode: % x", in)
		}
		c := pk.Connect
		uid := string(c.Username)
		claims, err := signer.Verify(string(c.Password))
		if uid != "alice" || chat.DeviceID(c.ClientIdentifier, "alice") == "" || err != nil || claims.UserID != "alice" || c.WillFlag {
			t.Fatalf("accepted user %q client id %q will %v %q password %d bytes (v%d)", uid, c.ClientIdentifier, c.WillFlag, c.WillTopic, len(c.Password), pk.ProtocolVersion)
		}
	})
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "broken pipe")
}

// decodeConnect decodes a whole CONNECT packet as the server would.
func decodeConnect(in []byte) (packets.Packet, bool) {
	var pk packets.Packet
	if len(in) < 2 || in[0]>>4 != packets.Connect {
		return pk, false
	}
	n, used, err := packets.DecodeLength(bytes.NewReader(in[1:]))
	if err != nil || 1+used+n > len(in) {
		return pk, false
	}
	body := in[1+used : 1+used+n]
	if len(body) < 7 {
		return pk, false
	}
	nameLen := int(binary.BigEndian.Uint16(body))
	if 2+nameLen >= len(body) {
		return pk, false
	}
	pk.ProtocolVersion = body[2+nameLen]
	if err := pk.ConnectDecode(body); err != nil {
		return pk, false
	}
	return pk, true
}
