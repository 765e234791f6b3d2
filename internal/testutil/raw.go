package testutil

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Raw is an MQTT connection driven packet by packet, for the protocol's
// corners that real clients hide: it writes and reads whole packets with
// Mochi's codec and keeps every byte it received.
type Raw struct {
	t       testing.TB
	conn    net.Conn
	r       *bufio.Reader
	Version byte // 4 for 3.1.1, 5 for MQTT 5, 3 for 3.1
	// Received holds every byte read so far.
	Received bytes.Buffer
}

// DialRaw opens a TCP connection to an MQTT listener, for protocol version
// (3, 4 or 5).
func DialRaw(t testing.TB, addr string, version byte) *Raw {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Raw{t: t, conn: conn, r: bufio.NewReader(conn), Version: version}
}

// RawConnect is a CONNECT of uid/device with a token, clean session.
func (c *Raw) RawConnect(clientID, user, pass string) packets.Packet {
	name := "MQTT"
	if c.Version == 3 {
		name = "MQIsdp"
	}
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: c.Version,
		Connect: packets.ConnectParams{ProtocolName: []byte(name), Clean: true, Keepalive: 30, ClientIdentifier: clientID,
			UsernameFlag: user != "", Username: []byte(user), PasswordFlag: pass != "", Password: []byte(pass)}}
}

// Write encodes and sends pk (its ProtocolVersion is set to the connection's).
func (c *Raw) Write(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.Version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("raw: cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.WriteBytes(buf.Bytes())
}

// WriteBytes sends bytes as they are.
func (c *Raw) WriteBytes(b []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// Read returns the next packet, decoded, or the read error (io.EOF when the
// server closed the connection) within d.
func (c *Raw) Read(d time.Duration) (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	hb, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	c.Received.WriteByte(hb)
	pk := packets.Packet{ProtocolVersion: c.Version}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(byteReader{c})
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	c.Received.Write(body)
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// Expect reads packets until one of type typ arrives (skipping others,
// e.g. server events), failing the test after d.
func (c *Raw) Expect(typ byte, d time.Duration) packets.Packet {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		pk, err := c.Read(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("raw: waiting for packet type %d: %v (received % x)", typ, err, c.Received.Bytes())
		}
		if pk.FixedHeader.Type == typ {
			return pk
		}
	}
}

// ExpectClosed reads until the server closes the connection, failing after
// d; it returns the packets read meanwhile.
func (c *Raw) ExpectClosed(d time.Duration) []packets.Packet {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var got []packets.Packet
	for {
		pk, err := c.Read(time.Until(deadline))
		if err == nil {
			got = append(got, pk)
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("raw: connection still open after %v (received % x)", d, c.Received.Bytes())
		}
		return got
	}
}

type byteReader struct{ c *Raw }

func (b byteReader) ReadByte() (byte, error) {
	x, err := b.c.r.ReadByte()
	if err == nil {
		b.c.Received.WriteByte(x)
	}
	return x, err
}

// Close ends the connection abruptly (no DISCONNECT): the server treats it
// as a lost connection and publishes the will, if any.
func (c *Raw) Close() { _ = c.conn.Close() }
