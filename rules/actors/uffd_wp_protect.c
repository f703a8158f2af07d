/*
 * Actor: userfaultfd write-protection of a file range.
 * UFFDIO_REGISTER with UFFDIO_REGISTER_MODE_WP sets VM_UFFD_WP under the
 * mmap lock for write; UFFDIO_WRITEPROTECT then (under the mmap lock for
 * read) installs a pte marker under the pte lock, even where no page is
 * mapped: the marker is what remembers the protection.
 */
void uffd_wp_protect(struct mm_struct *mm, struct vm_area_struct *vma,
		     pmd_t *pmd, unsigned long addr)
{
	spinlock_t *ptl;
	pte_t *pte;

	mmap_write_lock(mm);
	vma->vm_flags |= VM_UFFD_WP;
	mmap_write_unlock(mm);

	mmap_read_lock(mm);
	if (!userfaultfd_wp(vma))
		goto out;
	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!pte)
		goto out;
	set_pte_at(mm, addr, pte, make_pte_marker(PTE_MARKER_UFFD_WP));
	pte_unmap_unlock(pte, ptl);
out:
	mmap_read_unlock(mm);
}
