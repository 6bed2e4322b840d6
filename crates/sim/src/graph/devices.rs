//! Devices: the directory's `devices` and Intune's `deviceManagement/managedDevices`.

use super::GraphOk;
use super::env::Env;
use super::objects;
use crate::errors::GraphError;

/// `GET /devices`.
pub(super) fn list(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    env.list(&t.devices, "devices", 100, 999, None, |d| Ok(objects::device(d)))
}

/// `GET /deviceManagement/managedDevices`: the devices Intune manages.
pub(super) fn managed(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let managed: Vec<&crate::world::Device> = t.devices.iter().filter(|d| d.managed).collect();
    env.list(&managed, "deviceManagement/managedDevices", 100, 999, None, |d| Ok(objects::managed_device(d, t)))
}
