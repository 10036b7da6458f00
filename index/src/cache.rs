//! The embedding cache: vectors keyed by the SHA-256 of the text that was embedded, so a
//! rebuild embeds only passages (and intent examples) whose text changed.
//!
//! One file per model (`<model>.bin`), records of `hash (32 bytes) | dimension × f32 LE`.
//! A build reads it whole, embeds what is missing, and writes back exactly the entries that
//! build used — to a temporary file renamed over the old one, so a crash mid-write leaves
//! the previous cache intact and entries of deleted passages do not pile up.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Embedder, IndexError, embed_batched};

/// What one [`EmbeddingCache::vectors`] call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheCounters {
    /// Texts found in the cache.
    pub cached: usize,
    /// Texts the model embedded.
    pub embedded: usize,
}

/// Vectors by content hash, for one model.
#[derive(Debug)]
pub struct EmbeddingCache {
    path: PathBuf,
    dimension: usize,
    entries: HashMap<[u8; 32], Vec<f32>>,
    used: HashMap<[u8; 32], Vec<f32>>,
}

impl EmbeddingCache {
    /// Opens (or starts) the cache at `path`; a file of another dimension or a torn tail is
    /// ignored rather than trusted.
    pub fn open(path: &Path, dimension: usize) -> Result<Self, IndexError> {
        let record = 32 + 4 * dimension;
        let mut entries = HashMap::new();
        match fs::read(path) {
            Ok(bytes) => {
                for chunk in bytes.chunks_exact(record) {
                    let hash: [u8; 32] = chunk[..32].try_into().expect("32-byte slice");
                    let vector = chunk[32..]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().expect("4-byte slice")))
                        .collect();
                    entries.insert(hash, vector);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IndexError::io(path, &e)),
        }
        Ok(Self {
            path: path.to_path_buf(),
            dimension,
            entries,
            used: HashMap::new(),
        })
    }

    /// Entries currently in the cache.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The vector of every text, from the cache or the model, in order.
    pub fn vectors(
        &mut self,
        embedder: &dyn Embedder,
        texts: &[String],
    ) -> Result<(Vec<Vec<f32>>, CacheCounters), IndexError> {
        let hashes: Vec<[u8; 32]> = texts
            .iter()
            .map(|t| crate::documents::content_hash(t))
            .collect();
        let mut missing: Vec<usize> = Vec::new();
        // The same text twice in one call is embedded once (a set: a first build embeds
        // every passage, and a scan of `missing` per text would be quadratic).
        let mut scheduled: HashSet<[u8; 32]> = HashSet::new();
        for (i, hash) in hashes.iter().enumerate() {
            let known = self.entries.contains_key(hash) || self.used.contains_key(hash);
            if !known && scheduled.insert(*hash) {
                missing.push(i);
            }
        }
        let fresh_texts: Vec<String> = missing.iter().map(|&i| texts[i].clone()).collect();
        let fresh = embed_batched(embedder, &fresh_texts)?;
        for (&i, vector) in missing.iter().zip(fresh) {
            self.used.insert(hashes[i], vector);
        }
        let mut out = Vec::with_capacity(texts.len());
        for hash in &hashes {
            let vector = match self.used.get(hash) {
                Some(v) => v.clone(),
                None => {
                    let v = self
                        .entries
                        .get(hash)
                        .expect("cached or embedded above")
                        .clone();
                    self.used.insert(*hash, v.clone());
                    v
                }
            };
            out.push(vector);
        }
        let counters = CacheCounters {
            cached: texts.len() - missing.len(),
            embedded: missing.len(),
        };
        Ok((out, counters))
    }

    /// Writes back the entries used since opening, atomically.
    pub fn save(self) -> Result<(), IndexError> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, &e))?;
        }
        let tmp = self.path.with_extension("bin.tmp");
        let mut bytes = Vec::with_capacity(self.used.len() * (32 + 4 * self.dimension));
        for (hash, vector) in &self.used {
            bytes.extend_from_slice(hash);
            for x in vector {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        let mut file = fs::File::create(&tmp).map_err(|e| IndexError::io(&tmp, &e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| IndexError::io(&tmp, &e))?;
        fs::rename(&tmp, &self.path).map_err(|e| IndexError::io(&self.path, &e))
    }
}
