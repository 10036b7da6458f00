//! Passage vectors stored next to the BM25 index and searched exactly: one contiguous
//! row-major `f32` matrix, scored by dot product (the vectors are L2-normalised, so this is
//! cosine similarity). At the sizes one store has (10⁵ passages × 384 dimensions = 150 MB
//! of floats at most) a linear scan is a few milliseconds and never misses a neighbour,
//! which an approximate index would.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::IndexError;

/// `rows × dimension` floats, row `i` being passage `i`'s vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatrix {
    dimension: usize,
    data: Vec<f32>,
}

impl VectorMatrix {
    pub fn new(dimension: usize, rows: &[Vec<f32>]) -> Self {
        let mut data = Vec::with_capacity(rows.len() * dimension);
        for row in rows {
            assert_eq!(
                row.len(),
                dimension,
                "every vector has the model's dimension"
            );
            data.extend_from_slice(row);
        }
        Self { dimension, data }
    }

    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.dimension).unwrap_or(0)
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dimension..(i + 1) * self.dimension]
    }

    /// Dot product of `query` with every row.
    pub fn scores(&self, query: &[f32]) -> Vec<f32> {
        self.data
            .chunks_exact(self.dimension)
            .map(|row| crate::cosine(query, row))
            .collect()
    }

    /// Writes the matrix as little-endian floats (`fsync`ed: the generation is switched in
    /// only after its files are durable).
    pub fn write(&self, path: &Path) -> Result<(), IndexError> {
        let mut bytes = Vec::with_capacity(self.data.len() * 4);
        for x in &self.data {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let mut file = fs::File::create(path).map_err(|e| IndexError::io(path, &e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| IndexError::io(path, &e))
    }

    pub fn read(path: &Path, dimension: usize) -> Result<Self, IndexError> {
        let bytes = fs::read(path).map_err(|e| IndexError::io(path, &e))?;
        if bytes.len() % (4 * dimension) != 0 {
            return Err(IndexError::Corrupt(format!(
                "{}: {} bytes is not a whole number of {dimension}-float rows",
                path.display(),
                bytes.len()
            )));
        }
        let data = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4-byte slice")))
            .collect();
        Ok(Self { dimension, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_scores_rows() {
        let m = VectorMatrix::new(2, &[vec![1.0, 0.0], vec![0.6, 0.8]]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.f32");
        m.write(&path).unwrap();
        let back = VectorMatrix::read(&path, 2).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.rows(), 2);
        assert_eq!(back.scores(&[0.0, 1.0]), vec![0.0, 0.8]);
        assert!(VectorMatrix::read(&path, 3).is_err());
    }
}
