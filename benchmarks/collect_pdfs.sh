#!/usr/bin/env bash
# Collect 67 real PDFs written by others (831 pages, about 15 MB): the package documentation that Debian 12
# (bookworm) ships in five TeX Live -doc packages, each PDF 3-30 pages with a text layer on page 1. They are for
# trying the `generate` path on real documents (see benchmarks/query_server.py), not part of any dataset.
#
#     benchmarks/collect_pdfs.sh DEST        e.g. benchmarks/collect_pdfs.sh /tmp/real-pdfs
#
# Needs apt-get, dpkg-deb and sha256sum (Debian/Ubuntu) and a Debian bookworm package index: on a machine whose
# /var/lib/apt/lists is empty run `apt-get update` first (as root); the download itself needs no root. The
# packages are pinned to their bookworm versions and every PDF is checked against its sha256, so the folder
# is the same collection wherever it is made. DEST gets the PDFs flat, named after their path under
# /usr/share/doc/texlive-doc with "/" written as "__" (latex/hyperref/backref.pdf -> latex__hyperref__backref.pdf).
# About 250 MB is downloaded into a temporary folder, which is removed at the end.
set -euo pipefail

dest=${1:?usage: $0 DEST (the folder to put the PDFs in)}
packages=(
    texlive-fonts-recommended-doc=2022.20230122-3
    texlive-humanities-doc=2022.20230122-4
    texlive-latex-base-doc=2022.20230122-3
    texlive-latex-recommended-doc=2022.20230122-3
    texlive-science-doc=2022.20230122-4
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "${packages[@]}")
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
done

mkdir -p "$dest"
count=0
while read -r sha256 path; do
    [[ -z $sha256 || $sha256 == \#* ]] && continue  # the package each group of PDFs comes from
    name=${path//\//__}
    cp "$work/root/usr/share/doc/texlive-doc/$path" "$dest/$name"
    echo "$sha256  $dest/$name" | sha256sum --check --quiet
    count=$((count + 1))
done <<'MANIFEST'
# texlive-fonts-recommended-doc
037369e520109fe27584142d870df8a293d0ac5466522253a3aec4bd93e34290  fonts/eurosym/testeuro.pdf
c84076a1eb94668ad187021398bd1e7c96419b86e8c9069fc64d3fbb782af6e1  fonts/pxfonts/pxfontsdoc.pdf
b7761465e45019e9c8329fce8a4711ca8c3e9003f334933bf7b7772496448b56  latex/euro/euro.pdf
# texlive-humanities-doc
abb8a4516b685422cba1fc9c16f0974dc3d46061efda48f07bf5988cfe609c5b  latex/bibleref-lds/bibleref-lds.pdf
5597de76335eb6793e0b28530fea75bb64fc9682b6b9c435fa7e452985332627  latex/bibleref/bibleref.pdf
84e019c166604d257daf828296fd1df90a2f4a7cec43330672dcae1e783bc7f0  latex/ecltree/ecltreesample.pdf
18c7526e1d708eaa0543e0a5af8f25c650aa2c287c9bb1e4d78a6f805afcd0f6  latex/eledmac/examples/2-line_numbers_in_header.pdf
0264148e17a05b61cf7ea40b5fec08b198468e859c0b6501dd8e7aa6ff2ba8e0  latex/jura/jura.pdf
6c57c1750d01e7b70a687947f3005c2898295fef31ba5b835797f9ea00ed6adb  latex/langnames/langnames.pdf
2cc7463f203a425c4fad470afc82dd9fde8421cd8df4e3bfbe8235149aa4f648  latex/ling-macros/ling-macros-doc.pdf
8b77a4255222e4c167cc598e9858594043d024c597f5f7890855d94e1809a661  latex/liturg/liturg.pdf
077d5d67ea921468638e0feafe56c44020c6bdee2c061135187791737686b572  latex/parrun/parrun.pdf
422016e89f2e43d07e46540c769101897f8f262f6e85f8358a8dab1d8c7cb530  latex/poetry/poetry.pdf
fe55b50b698f4a24b208d812773db8a63a620d7adad7faf5c4907a4dc46385a7  latex/reledmac/doc-more/page-typesetting-columns.pdf
bd53bb62986f3c181c5663981b5c883de8d995d676a11bb02697e08f25edfacf  latex/screenplay-pkg/screenplay-pkg-example.pdf
3aef8f8478deff7b2f11bbeee89d571d262ef460cae5140aa5c28f0979da2ed8  latex/tree-dvips/lingmacros-manual.pdf
# texlive-latex-base-doc
3b3572cca4912a0a853e9f2f9d2ceef3dff2e7dcfd2d6b4eab8cbd87973dc476  bibtex/babelbib/tugboat-babelbib.pdf
49b4f6b619aad0d2dfc48a5d1c58820a112eebd3fb39634636b24b5942e4cb08  latex/amscls/amsbooka.pdf
4d0c43732a215ade3180a69ec421b9c83a38e8273407060e3b7da71c1653d450  latex/auxhook/auxhook.pdf
512207346cc6b71d4232b5032970a429fe9fb39662c0fbbcc880ab44448aefa1  latex/carlisle/ltxtable.pdf
f329ec66f36adc4de571fffcbd362ae68fd248d843f237bf93b1ad5cc32500a5  latex/etexcmds/etexcmds.pdf
71675a55927f7091cc42cc6bbb98c4a949b033bb6341f7fd8d05e6dd9eb505e3  latex/gettitlestring/gettitlestring.pdf
ebb60b1af17abb95f4dba76441732f81f04659c657aefa8c0a10a097f0ec4cac  latex/grfext/grfext.pdf
75115169e0c3b4fb5616a9c84f83c602426f46efc4e198a1a122e0246ab2f7e4  latex/hypdoc/hypdoc.pdf
4d69018a800cd4685d95dd51621442939b3cd738756a142aae12b6aecb3aff74  latex/infwarerr/infwarerr.pdf
6935d7a204b97aef195de3c1d795883b447e0bbeaed83b2750b93f1991320b19  latex/l3kernel/expl3.pdf
785611949cb9d523304c8a81e6e4bd80dcfc9807739609af446cb09000323af5  latex/letltxmacro/letltxmacro.pdf
fb7c6708e6167dc9a875943f0638b341dd6b9b677aed5f6d56fdf3bbcc68e511  latex/natbib/natbib.pdf
ad07adca040319f898765024a9d48f1c9f62a09d700b71de4663e8762e86280d  latex/pdfescape/pdfescape.pdf
d972ebb3a1053bab4c97436f87c70b481bf69c7c603ba40da9a073bd293af451  latex/pspicture/pspicture.pdf
9beb54360051c2ae01364fc63c2d2f1160a66669b006a89b7f7d48b0dd6dfabc  latex/tools/afterpage.pdf
# texlive-latex-recommended-doc
4674372529f083754f872a3701bb32ab167c80b88f331c648a83c09cf04d7199  latex/beamer/beamerexample-lecture-print-version.pdf
0a9b114d0a0a64b69348083fd718ab6fe40d7867e3d1446ee3eafedb27d9fdef  latex/breqn/mathstyle.pdf
d5d5bbe04667f722477e0905c28accbb5cb31b9b80a44490f47a0f99b0fc8776  latex/crop/crop.pdf
1d102775ae5f988f3ad2c2baeec6cd3b521c11a6d62f6dd3459b0dcc2475d848  latex/euenc/euenc.pdf
0a1a077af5de3d774bb5c38621f905befb30ef5b49380221d524996be760be8a  latex/everyshi/everyshi.pdf
ae2935276ca7b2c5004de268dd9e574d2640972627807e3e6b02497e9bae2a18  latex/fancyvrb/fancyvrb-doc.pdf
ff120c47ed0627b5b9ad18b62d0aa4a8fb11b6589efc0a022f4bd6bb85b51efa  latex/fp/documentation.pdf
7de3e52b736695ffe40a10fb73654eba116d3638b1513ed677bce145caf065fd  latex/l3experimental/l3bitset/l3bitset.pdf
f904cb3689b863a52a162b276ca1dd3ba69757c6b0f8eecfb190ebd76b4f31f0  latex/mdwtools/at.pdf
365945f44b60cc9690366237b2f5098ad63b98d423eff119aea93ebb6bc36a17  latex/newfloat/newfloat.pdf
206ec20f935a109583fe01375f6667d7a4b48d5adca67e460c24e5c11f101f99  latex/pdfcolfoot/pdfcolfoot.pdf
f5b96b3ebbefe27d54d2a5022179028b0ba98e527dd5488bf67d94fa73134b52  latex/pdfpages/pdfpages.pdf
466bbc1a2db8b61e5c7d8e25cae92612559547eb38b09ede894b8abcb4317b2c  latex/ragged2e/ragged2e.pdf
a0681a93e2bde38c5224489d198a27824d89b37aae79da8d9adaf96472e571fa  latex/setspace/setspace-doc.pdf
2bced2441a118ba06e003b6235f12b30b7b4421b8d8f3eef817a0dd9a76bacf6  latex/typehtml/typehtml.pdf
740d2dafd2922e91f5875cc45a658583ce99e6cb4e5356bca6118013a36b6e00  latex/unicode-math/unicode-math.pdf
# texlive-science-doc
af324a73b989a8461a42b64773b09381cbcbdac188ebbc72ccc3d211e00fe7b6  amstex/base/amstinst.pdf
d4a7a96d7c3c5b192f3059a467c941f72756493d402915b3f02166d0f9e7ef22  generic/youngtab/youngtab.pdf
25e90e377020e19b9f8223fa86eb5c6c52a0e32ce3a1318741f6e5ea44808f5b  latex/amscdx/amscdx.pdf
c06383543231cbcbda2c331380ceb88d8997215803e62dbb9ca3c11a4a95a76a  latex/bosisio/accenti.pdf
10072b86430e644ff1782c358bbdddef8018a8d8281e852a42ad19aa644abb9b  latex/cascade/cascade-french.pdf
a6b8da543a7a130d028981daeee9a8c7c784adf7ecd580b6d2a6f9479bffea41  latex/chemschemex/chemschemex.pdf
5a731d66b06391d323fff916fa0961c195a7e98e72ac5d39f7bdc8b96eb76f7a  latex/csassignments/csassignments.pdf
7dc5d90f515724088068ac96fe87a72cf906d25b1c825fe2bf8005eb94eafad3  latex/drawmatrix/drawmatrix.pdf
288f01d222684e7197e5b92d4039e8fa5e9ccdde30a10631263ddb8566d49dbc  latex/eqnarray/eqnarray.pdf
c5b097f7fe3198d340e77565a90292830ad20aa5640b40bbded9a78effa57b54  latex/functan/functan.pdf
04264a46081bced07984f6c34412a531f08cfba244d5dc26a12b758f3fb03832  latex/hepnames/hepnames.pdf
66fb4a3d6ef4b7f49649e72053f3b15b705050b66ce76753bad56dc87e735e4c  latex/isomath/isomath.pdf
c4c76983d1f617ff9cd1037f86cb2d4852af93be9ddb42cdb6ba8a8dfe64e091  latex/lplfitch/lplfitch.pdf
c0d775b07873d0701e054ba32cfafe60a51c5ee6c0009f2fcac0aa984a850be2  latex/mecaso/mecaso.pdf
cdb67c693ddb9727007c48829d1be01e2314c18efa7a59bd12f46e65b7df1dad  latex/nath/nathguide.pdf
b39c02ee77879ae277fe5da76c236be13664912f99be0d711e4822732f59aa49  latex/physunits/physunits.pdf
2185195f5de4ce237207772c64d4e65836e4b373954c6f61b1d2d2339a6e6924  latex/rec-thy/rec-thy.pdf
f12a98cc9506e2ea964655778cb4792dc465c4dc09d1e37143d936dbbf2b6572  latex/simplebnf/simplebnf-doc.pdf
860f600c117cd8cf33aa8c949534d03a26548ce80e3411d580a5a47ae508e453  latex/statistik/statistik.pdf
5719ffeec8698682e4219c8ab6c3ad7384d520c7b7aacbbd434bd6c6eac2b754  latex/t-angles/t-manual.pdf
MANIFEST
echo "$count PDFs in $dest"
