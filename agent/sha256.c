/* placeholder: sha256 */
