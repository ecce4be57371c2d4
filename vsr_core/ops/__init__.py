"""Operations every stage shares, one implementation each: frame conversion and validation, resizing,
colour fix, spatial tiling, temporal windows."""
