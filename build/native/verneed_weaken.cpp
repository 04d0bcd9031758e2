// Marks one version requirement of an ELF64 shared object as weak (VER_FLG_WEAK in .gnu.version_r),
// so that glibc's loader does not refuse the library when the system library lacks that version.
// Usage: verneed_weaken <file.so> <version-name>   (e.g. GLIBCXX_3.4.32)
// Exit codes: 0 patched or already weak, 3 version not required by the file, 1 error.
#include <elf.h>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 3) { std::fprintf(stderr, "usage: verneed_weaken FILE VERSION\n"); return 1; }
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) { std::fprintf(stderr, "verneed_weaken: cannot read %s\n", argv[1]); return 1; }
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    if (bytes.size() < sizeof(Elf64_Ehdr) || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0 ||
        bytes[EI_CLASS] != ELFCLASS64) {
        std::fprintf(stderr, "verneed_weaken: %s is not an ELF64 file\n", argv[1]);
        return 1;
    }
    auto* header = reinterpret_cast<Elf64_Ehdr*>(bytes.data());
    auto* sections = reinterpret_cast<Elf64_Shdr*>(bytes.data() + header->e_shoff);
    bool found = false, changed = false;
    for (int i = 0; i < header->e_shnum; ++i) {
        if (sections[i].sh_type != SHT_GNU_verneed) continue;
        const Elf64_Shdr& strings = sections[sections[i].sh_link];
        const char* names = reinterpret_cast<const char*>(bytes.data() + strings.sh_offset);
        size_t needOffset = sections[i].sh_offset;
        for (;;) {
            auto* need = reinterpret_cast<Elf64_Verneed*>(bytes.data() + needOffset);
            size_t auxOffset = needOffset + need->vn_aux;
            for (int a = 0; a < need->vn_cnt; ++a) {
                auto* aux = reinterpret_cast<Elf64_Vernaux*>(bytes.data() + auxOffset);
                if (std::strcmp(names + aux->vna_name, argv[2]) == 0) {
                    found = true;
                    if ((aux->vna_flags & VER_FLG_WEAK) == 0) { aux->vna_flags |= VER_FLG_WEAK; changed = true; }
                }
                if (aux->vna_next == 0) break;
                auxOffset += aux->vna_next;
            }
            if (need->vn_next == 0) break;
            needOffset += need->vn_next;
        }
    }
    if (!found) return 3;
    if (changed) {
        std::ofstream out(argv[1], std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        if (!out) { std::fprintf(stderr, "verneed_weaken: cannot write %s\n", argv[1]); return 1; }
    }
    return 0;
}
