"""medcl's datasets, one module each, on a shared base (:mod:`medcl.data.datasets.base`): every
item is a recipe that medcl.data.recipes decodes and augments per batch. Import them from
``medcl.data`` (ContigDataset, ImageDataset, PuzzleDataset) or their modules (ViewsDataset)."""
