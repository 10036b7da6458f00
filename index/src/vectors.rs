//! Passage vectors stored next to the BM25 index and searched exactly: one contiguous
//! row-major `f32` matrix, scored by dot product (the vectors are L2-normalised, so this is
//! cosine similarity). A linear scan never misses a neighbour, which an approximate index
//! would, and at the sizes one store has it is fast enough — in int8.
//!
//! Why a search scans [`QuantizedMatrix`] rather than the `f32` matrix: at 10⁵ passages ×
//! 384 dimensions the floats are 150 MB, and a scan is bound by reading them from memory
//! (BENCHMARKS.md: at 106,688 passages the f32 scan alone took 19 ms on one core, the
//! 20 ms budget of a whole search).
//! Symmetric int8 with one scale per row is a quarter of the bytes; its cosines differ from
//! the exact ones by about 0.002, below the gaps that decide a rank. The `f32` matrix stays
//! the file format (and the cache's), so the quantisation can change without re-embedding.

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

    /// The int8 form a search scans.
    pub fn quantize(&self) -> QuantizedMatrix {
        let mut data = Vec::with_capacity(self.data.len());
        let mut scales = Vec::with_capacity(self.rows());
        for row in self.data.chunks_exact(self.dimension) {
            scales.push(quantize_into(row, &mut data));
        }
        QuantizedMatrix {
            dimension: self.dimension,
            data,
            scales,
        }
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

/// Appends `row` as int8 (`x ≈ scale × q`, `q` in −127..=127) to `out`; returns the scale.
fn quantize_into(row: &[f32], out: &mut Vec<i8>) -> f32 {
    let largest = row.iter().fold(0.0_f32, |m, x| m.max(x.abs()));
    let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
    // In range by construction: |x / scale| ≤ 127.
    out.extend(row.iter().map(|x| (x / scale).round() as i8));
    scale
}

/// Every row in int8 with its own scale: what a search scans.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedMatrix {
    dimension: usize,
    data: Vec<i8>,
    scales: Vec<f32>,
}

impl QuantizedMatrix {
    pub fn rows(&self) -> usize {
        self.scales.len()
    }

    /// Approximate dot product of `query` with every row.
    pub fn scores(&self, query: &[f32]) -> Vec<f32> {
        let mut quantized = Vec::with_capacity(query.len());
        let query_scale = quantize_into(query, &mut quantized);
        let query: Vec<i16> = quantized.into_iter().map(i16::from).collect();
        self.data
            .chunks_exact(self.dimension)
            .zip(&self.scales)
            .map(|(row, scale)| int8_dot(row, &query) as f32 * scale * query_scale)
            .collect()
    }
}

/// Dot product of an int8 row and an int8 query widened to i16.
///
/// Shaped for the compiler's vector instructions on any x86-64 (no AVX2 assumed, no
/// `unsafe`): products of two values in −127..=127 fit an i16, and so does the sum of two
/// of them (≤ 32,258), which is the pattern SSE2's multiply-add (`pmaddwd`) computes; 16
/// independent i32 sums keep the loop free of dependencies. Measured on 106,688 rows × 384
/// on one core: 5.3 ms, against 10.7 ms for the plain widening `map(..).sum()`.
fn int8_dot(row: &[i8], query: &[i16]) -> i32 {
    const BLOCK: usize = 32;
    const HALF: usize = BLOCK / 2;
    let (rows, queries) = (row.chunks_exact(BLOCK), query.chunks_exact(BLOCK));
    let tail: i32 = rows
        .remainder()
        .iter()
        .zip(queries.remainder())
        .map(|(&a, &b)| i32::from(a) * i32::from(b))
        .sum();
    let mut sums = [0_i32; HALF];
    for (r, q) in rows.zip(queries) {
        for lane in 0..HALF {
            sums[lane] += i32::from(
                i16::from(r[lane]) * q[lane] + i16::from(r[lane + HALF]) * q[lane + HALF],
            );
        }
    }
    sums.iter().sum::<i32>() + tail
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
        // Rows shorter than a block take the remainder path.
        let approx = back.quantize().scores(&[0.0, 1.0]);
        assert!(
            approx[0].abs() < 0.01 && (approx[1] - 0.8).abs() < 0.01,
            "{approx:?}"
        );
    }

    #[test]
    fn int8_scores_stay_close_to_exact_ones() {
        // Deterministic, unit-length pseudo-random vectors of the model's dimension.
        let mut state = 0x9e37_79b9_u32;
        let mut unit = || {
            let mut v: Vec<f32> = (0..384)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as f32 / u32::MAX as f32 - 0.5
                })
                .collect();
            let norm = crate::cosine(&v, &v).sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        };
        let rows: Vec<Vec<f32>> = (0..50).map(|_| unit()).collect();
        let m = VectorMatrix::new(384, &rows);
        let q = m.quantize();
        assert_eq!(q.rows(), 50);
        let query = unit();
        for (exact, approx) in m.scores(&query).iter().zip(q.scores(&query)) {
            assert!((exact - approx).abs() < 0.01, "{exact} vs {approx}");
        }
        // A row scored against itself stays ≈ 1.
        assert!((q.scores(&rows[3])[3] - 1.0).abs() < 0.01);
    }
}
