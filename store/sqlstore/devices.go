package sqlstore

import (
	"context"
	"fmt"

	"github.com/mqim/mqim/store"
)

const deviceCols = `user_id, device_id, platform, token, topic, updated_at`

// insertDevice inserts one device from named parameters; Dialect.UpsertDevice
// follows it.
const insertDevice = `INSERT INTO devices (` + deviceCols + `)
	VALUES (:user_id, :device_id, :platform, :token, :topic, :updated_at)`

// PutDevice registers or updates a device and sets d.UpdatedAt
// (store.Devices). A token already registered to another user or device
// moves to this one.
func (s *Store) PutDevice(ctx context.Context, d *store.Device) error {
	d.UpdatedAt = now()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return s.wrap("put device", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	// A token belongs to one device: a phone that changed hands is re-bound.
	if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE platform = ? AND token = ? AND NOT (user_id = ? AND device_id = ?)`,
		d.Platform, d.Token, d.UserID, d.DeviceID); err != nil {
		return s.wrap("put device", err)
	}
	if _, err := tx.NamedExecContext(ctx, insertDevice+` `+s.d.UpsertDevice, d); err != nil {
		return s.wrap("put device", err)
	}
	return s.wrap("put device", tx.Commit())
}

// DeleteDevice removes one of a user's devices, or returns ErrNotFound
// (store.Devices).
func (s *Store) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM devices WHERE user_id = ? AND device_id = ?`, userID, deviceID)
	if err != nil {
		return s.wrap("delete device", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("device %s: %w", deviceID, store.ErrNotFound)
	}
	return nil
}

// Devices lists a user's devices by device id (store.Devices).
func (s *Store) Devices(ctx context.Context, userID string) ([]store.Device, error) {
	ds := []store.Device{}
	err := s.db.SelectContext(ctx, &ds, `SELECT `+deviceCols+` FROM devices WHERE user_id = ? ORDER BY device_id`, userID)
	return ds, s.wrap("devices", err)
}

// DevicesOf lists the devices of several users, in no order (store.Devices:
// push fan-out).
func (s *Store) DevicesOf(ctx context.Context, userIDs []string) ([]store.Device, error) {
	return selectIn[store.Device](ctx, s, "devices", `SELECT `+deviceCols+` FROM devices WHERE user_id IN (?)`, userIDs)
}

// DeleteToken removes the registration of a token the push service
// reported dead; none is no error (store.Devices).
func (s *Store) DeleteToken(ctx context.Context, platform, token string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM devices WHERE platform = ? AND token = ?`, platform, token)
	return s.wrap("delete token", err)
}
