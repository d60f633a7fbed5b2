//! A batch of raw records, copied out of the ring buffer in one allocation.

/// Records back to back in one buffer, with the end offset of each.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        Self {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(records),
        }
    }

    pub fn push(&mut self, record: &[u8]) {
        self.data.extend_from_slice(record);
        self.ends.push(self.data.len());
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.data[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_and_intact() {
        let mut batch = Batch::default();
        batch.push(b"one");
        batch.push(b"");
        batch.push(b"three");
        let records: Vec<&[u8]> = batch.iter().collect();
        assert_eq!(records, [&b"one"[..], b"", b"three"]);
        assert_eq!(batch.len(), 3);
    }
}
