//! An in-memory backend for unit tests.

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;

use super::{Backend, ObjectInfo, ObjectKind};
use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct MemoryBackend {
    objects: Mutex<BTreeMap<(u8, String), Vec<u8>>>,
}

fn key(kind: ObjectKind, name: &str) -> (u8, String) {
    (kind as u8, name.to_string())
}

fn not_found(kind: ObjectKind, name: &str) -> Error {
    Error::io(
        format!("memory:{}/{name}", kind.name()),
        io::Error::from(io::ErrorKind::NotFound),
    )
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn create(&self) -> Result<()> {
        Ok(())
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|((k, _), _)| *k == kind as u8)
            .map(|((_, name), data)| ObjectInfo {
                name: name.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        self.objects
            .lock()
            .unwrap()
            .get(&key(kind, name))
            .cloned()
            .ok_or_else(|| not_found(kind, name))
    }

    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let objects = self.objects.lock().unwrap();
        let data = objects
            .get(&key(kind, name))
            .ok_or_else(|| not_found(kind, name))?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| {
                Error::io(
                    format!("memory:{name}"),
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                )
            })?;
        Ok(data[offset as usize..end as usize].to_vec())
    }

    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64> {
        Ok(self.read(kind, name)?.len() as u64)
    }

    fn write(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<()> {
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(&key(kind, name)) {
            return Err(Error::AlreadyExists {
                path: format!("memory:{}/{name}", kind.name()).into(),
            });
        }
        objects.insert(key(kind, name), data.to_vec());
        Ok(())
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        self.objects
            .lock()
            .unwrap()
            .remove(&key(kind, name))
            .map(|_| ())
            .ok_or_else(|| not_found(kind, name))
    }
}
