/*
 * Actor: munmap of the range. Under the mmap lock for write the ptes are
 * zapped under the pte lock, then the vma is unlinked from the file's rmap
 * tree (i_mmap_rwsem for write) and its page table is freed.
 */
void munmap(struct mm_struct *mm, struct vm_area_struct *vma, pmd_t *pmd,
	    unsigned long addr, struct address_space *mapping)
{
	spinlock_t *ptl;
	pte_t *pte;

	mmap_write_lock(mm);
	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (pte) {
		pte_clear(mm, addr, pte);
		pte_unmap_unlock(pte, ptl);
	}
	i_mmap_lock_write(mapping);
	pmd_clear(pmd);
	pte_free(mm, pmd_pgtable(*pmd));
	i_mmap_unlock_write(mapping);
	mmap_write_unlock(mm);
}
