"""Song-level feature extraction, transfer learning and t-SNE (Sections 4.1, 5.5, 7)."""
