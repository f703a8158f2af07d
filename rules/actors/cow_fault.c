/*
 * Actor: a write fault on a private file mapping (copy on write).
 * anon_vma_prepare() publishes vma->anon_vma under the mm's
 * page_table_lock; the fault then maps the anonymous copy with a pte
 * under the pte lock, if the page table is still there.
 */
void cow_fault(struct mm_struct *mm, struct vm_area_struct *vma,
	       pmd_t *pmd, unsigned long addr, struct anon_vma *anon_vma)
{
	spinlock_t *ptl;
	pte_t *pte;

	mmap_read_lock(mm);
	spin_lock(&mm->page_table_lock);
	if (!vma->anon_vma)
		vma->anon_vma = anon_vma;
	spin_unlock(&mm->page_table_lock);

	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!pte)
		goto out;
	set_pte_at(mm, addr, pte, mk_pte(page, vma->vm_page_prot));
	pte_unmap_unlock(pte, ptl);
out:
	mmap_read_unlock(mm);
}
