/*
 * Actor: a read fault mapping the page cache folio with a pte
 * (filemap_map_pages() shape). It only try-locks the folio: while the
 * collapsing thread holds the huge page's lock, no new pte of it appears.
 */
void fault_fill(struct mm_struct *mm, struct vm_area_struct *vma,
		pmd_t *pmd, unsigned long addr, struct folio *folio)
{
	spinlock_t *ptl;
	pte_t *pte;

	mmap_read_lock(mm);
	if (!folio_trylock(folio))
		goto out;
	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!pte)
		goto unlock;
	set_pte_at(mm, addr, pte, mk_pte(&folio->page, vma->vm_page_prot));
	pte_unmap_unlock(pte, ptl);
unlock:
	folio_unlock(folio);
out:
	mmap_read_unlock(mm);
}
