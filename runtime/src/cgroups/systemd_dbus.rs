//! The little of systemd's D-Bus API the driver uses: StartTransientUnit, StopUnit,
//! SetUnitProperties, ResetFailedUnit and the Version property, with zbus's blocking API.
//!
//! husk talks to systemd through the system bus (dbus-daemon or dbus-broker). Not through
//! systemd's private socket /run/systemd/private, runc's fallback as root when there is no bus:
//! systemd sends its messages there with the well-known sender "org.freedesktop.systemd1",
//! which zbus 5 refuses (its connection thread panics: "Invalid unique name"). A start or stop
//! is a job: husk listens for JobRemoved before it asks, then waits for its job's result with a
//! bound.

use std::sync::mpsc;
use std::time::Duration;

use zbus::blocking::{Connection, MessageIterator};
use zbus::message::Type;
use zbus::zvariant::{OwnedObjectPath, Value};
use zbus::MatchRule;

use super::systemd::SystemdError;
use super::systemd_props::{PropValue, Property};

const SYSTEM_BUS: &str = "the D-Bus system bus (/run/dbus/system_bus_socket)";
/// A bound on every call, so that a silent bus can never hang husk.
const METHOD_TIMEOUT: Duration = Duration::from_secs(30);
const DESTINATION: &str = "org.freedesktop.systemd1";
const OBJECT: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

pub struct Systemd {
    conn: Connection,
}

fn to_value(v: &PropValue) -> Value<'static> {
    match v {
        PropValue::Bool(b) => Value::from(*b),
        PropValue::I32(n) => Value::from(*n),
        PropValue::U32(n) => Value::from(*n),
        PropValue::I64(n) => Value::from(*n),
        PropValue::U64(n) => Value::from(*n),
        PropValue::F64(n) => Value::from(*n),
        PropValue::Str(s) => Value::from(s.clone()),
        PropValue::U32s(v) => Value::from(v.clone()),
        PropValue::Bytes(v) => Value::from(v.clone()),
        PropValue::Devices(v) => Value::from(v.clone()),
    }
}

fn to_values(props: &[Property]) -> Vec<(&str, Value<'static>)> {
    props.iter().map(|(name, v)| (name.as_str(), to_value(v))).collect()
}

impl Systemd {
    pub fn connect() -> Result<Systemd, SystemdError> {
        if !std::path::Path::new("/run/systemd/system").is_dir() {
            return Err(SystemdError::NotRunning);
        }
        let conn = zbus::blocking::connection::Builder::system()
            .map(|b| b.method_timeout(METHOD_TIMEOUT))
            .and_then(|b| b.build())
            .map_err(|source| SystemdError::Connect {
                path: SYSTEM_BUS.to_string(),
                source: Box::new(source),
            })?;
        Ok(Systemd { conn })
    }

    /// systemd's version number ("252.22-1~deb12u1" is 252); 0 when it cannot be read, which
    /// leaves out the properties newer systemds learned (cgroupfs still gets the limits).
    pub fn version(&self) -> u32 {
        let reply = self.conn.call_method(
            Some(DESTINATION),
            OBJECT,
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(MANAGER, "Version"),
        );
        let Ok(reply) = reply else { return 0 };
        let body = reply.body();
        let Ok(value) = body.deserialize::<Value>() else {
            return 0;
        };
        let text = match value {
            Value::Str(s) => s.to_string(),
            Value::Value(v) => v.to_string(),
            other => other.to_string(),
        };
        let digits: String = text
            .trim_start_matches(['"', 'v'])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap_or(0)
    }

    fn call<B>(&self, action: &'static str, unit: &str, method: &str, body: &B) -> Result<zbus::Message, SystemdError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.conn
            .call_method(Some(DESTINATION), OBJECT, Some(MANAGER), method, body)
            .map_err(|source| SystemdError::Call {
                action,
                unit: unit.to_string(),
                source: Box::new(source),
            })
    }

    /// Starts `unit` (mode "replace") and waits for its job. A unit of that name left over
    /// (failed) is reset and the start tried once more, as runc does.
    pub fn start_transient_unit(&self, unit: &str, props: &[Property], timeout: Duration) -> Result<(), SystemdError> {
        let aux: Vec<(&str, Vec<(&str, Value)>)> = Vec::new();
        let body = (unit, "replace", to_values(props), aux);
        let run = || {
            self.run_job("start", unit, timeout, || {
                self.call("start", unit, "StartTransientUnit", &body)
            })
        };
        let result = match run() {
            Err(SystemdError::Call { source, .. }) if is_dbus_error(&source, "UnitExists") => {
                self.reset_failed_unit(unit);
                run()
            }
            other => other,
        };
        if result.is_err() {
            // A unit whose job failed stays loaded as "failed": let systemd drop it.
            self.reset_failed_unit(unit);
        }
        result
    }

    /// Stops `unit` and waits; a unit systemd does not know (gone already) is success.
    pub fn stop_unit(&self, unit: &str, timeout: Duration) -> Result<(), SystemdError> {
        let result = self.run_job("stop", unit, timeout, || {
            self.call("stop", unit, "StopUnit", &(unit, "replace"))
        });
        self.reset_failed_unit(unit);
        match result {
            Err(SystemdError::Call { source, .. }) if is_dbus_error(&source, "NoSuchUnit") => Ok(()),
            other => other,
        }
    }

    /// Runtime (not persistent) properties of a live unit.
    pub fn set_unit_properties(&self, unit: &str, props: &[Property]) -> Result<(), SystemdError> {
        self.call(
            "set properties of",
            unit,
            "SetUnitProperties",
            &(unit, true, to_values(props)),
        )
        .map(drop)
    }

    fn reset_failed_unit(&self, unit: &str) {
        let _ = self.call("reset", unit, "ResetFailedUnit", &(unit,));
    }

    /// Subscribes to JobRemoved, runs `request` (which returns the job's path), and waits for
    /// that job's result on a helper thread, so that the wait is bounded.
    fn run_job(
        &self,
        action: &'static str,
        unit: &str,
        timeout: Duration,
        request: impl FnOnce() -> Result<zbus::Message, SystemdError>,
    ) -> Result<(), SystemdError> {
        let call_err = |source| SystemdError::Call {
            action,
            unit: unit.to_string(),
            source: Box::new(source),
        };
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .interface(MANAGER)
            .and_then(|b| b.member("JobRemoved"))
            .map_err(call_err)?
            .build();
        let signals = MessageIterator::for_match_rule(rule, &self.conn, Some(64)).map_err(call_err)?;
        // Subscribe makes systemd send job signals on the system bus; the private socket gets
        // them anyway. An error here only means the wait may time out, so it is not fatal.
        let _ = self
            .conn
            .call_method(Some(DESTINATION), OBJECT, Some(MANAGER), "Subscribe", &());
        let reply = request()?;
        let job: OwnedObjectPath = reply.body().deserialize().map_err(call_err)?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for msg in signals.flatten() {
                if let Ok((_id, path, _unit, result)) =
                    msg.body().deserialize::<(u32, OwnedObjectPath, String, String)>()
                {
                    if path == job {
                        let _ = tx.send(result);
                        return;
                    }
                }
            }
        });
        match rx.recv_timeout(timeout) {
            Ok(result) if result == "done" => Ok(()),
            Ok(result) => Err(SystemdError::JobFailed {
                action,
                unit: unit.to_string(),
                result,
            }),
            Err(_) => Err(SystemdError::JobTimeout {
                action,
                unit: unit.to_string(),
                secs: timeout.as_secs(),
            }),
        }
    }
}

/// Whether `err` is the D-Bus error org.freedesktop.systemd1.<name>.
fn is_dbus_error(err: &zbus::Error, name: &str) -> bool {
    match err {
        zbus::Error::MethodError(error_name, _, _) => error_name.as_str().ends_with(name),
        _ => false,
    }
}
