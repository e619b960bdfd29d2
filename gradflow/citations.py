"""The references gradflow implements, by citation key.

One concept, the bibliography: its length is the BibTeX entries themselves.

Docstrings cite papers by key (``[pascanu2013]``); this module maps every key to a BibTeX
entry (:data:`BIBTEX`) and a one-line text form, so a report or ``--cite`` can list them.

Examples:
    >>> text("tallec2018chrono")
    'Tallec & Ollivier (2018), Can recurrent neural networks warp time?, ICLR 2018'
    >>> cite(["elman1990"]).splitlines()[0]
    '@article{elman1990,'
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import UsageError, did_you_mean

# key: (entry type, authors as "Last, First and ...", year, title, venue fields, short authors,
#       short venue for the one-line form)
_Ref = tuple[str, str, str, str, dict[str, str], str, str]

_REFS: dict[str, _Ref] = {
    # ---- cells --------------------------------------------------------------------------------
    "elman1990": (
        "article",
        "Elman, Jeffrey L.",
        "1990",
        "Finding structure in time",
        {
            "journal": "Cognitive Science",
            "volume": "14",
            "number": "2",
            "pages": "179--211",
            "doi": "10.1207/s15516709cog1402_1",
        },
        "Elman",
        "Cognitive Science 14(2):179-211",
    ),
    "hochreiter1997": (
        "article",
        'Hochreiter, Sepp and Schmidhuber, J{\\"u}rgen',
        "1997",
        "Long short-term memory",
        {
            "journal": "Neural Computation",
            "volume": "9",
            "number": "8",
            "pages": "1735--1780",
            "doi": "10.1162/neco.1997.9.8.1735",
        },
        "Hochreiter & Schmidhuber",
        "Neural Computation 9(8):1735-1780",
    ),
    "gers2000forget": (
        "article",
        'Gers, Felix A. and Schmidhuber, J{\\"u}rgen and Cummins, Fred',
        "2000",
        "Learning to forget: continual prediction with {LSTM}",
        {
            "journal": "Neural Computation",
            "volume": "12",
            "number": "10",
            "pages": "2451--2471",
            "doi": "10.1162/089976600300015015",
        },
        "Gers, Schmidhuber & Cummins",
        "Neural Computation 12(10):2451-2471",
    ),
    "sak2014lstmp": (
        "inproceedings",
        "Sak, Ha{\\c{s}}im and Senior, Andrew and Beaufays, Fran{\\c{c}}oise",
        "2014",
        "Long short-term memory recurrent neural network architectures for large scale "
        "acoustic modeling",
        {
            "booktitle": "Proceedings of Interspeech 2014",
            "pages": "338--342",
            "doi": "10.21437/Interspeech.2014-80",
        },
        "Sak, Senior & Beaufays",
        "Interspeech 2014:338-342",
    ),
    "gers2000peephole": (
        "inproceedings",
        'Gers, Felix A. and Schmidhuber, J{\\"u}rgen',
        "2000",
        "Recurrent nets that time and count",
        {
            "booktitle": "Proceedings of the IEEE-INNS-ENNS International Joint Conference on "
            "Neural Networks (IJCNN 2000)",
            "volume": "3",
            "pages": "189--194",
            "doi": "10.1109/IJCNN.2000.861302",
        },
        "Gers & Schmidhuber",
        "IJCNN 2000, vol. 3, pp. 189-194",
    ),
    "greff2017": (
        "article",
        "Greff, Klaus and Srivastava, Rupesh K. and Koutn{\\'i}k, Jan and "
        'Steunebrink, Bas R. and Schmidhuber, J{\\"u}rgen',
        "2017",
        "{LSTM}: a search space odyssey",
        {
            "journal": "IEEE Transactions on Neural Networks and Learning Systems",
            "volume": "28",
            "number": "10",
            "pages": "2222--2232",
            "doi": "10.1109/TNNLS.2016.2582924",
        },
        "Greff, Srivastava, Koutnik, Steunebrink & Schmidhuber",
        "IEEE TNNLS 28(10):2222-2232",
    ),
    "cho2014": (
        "inproceedings",
        'Cho, Kyunghyun and van Merri{\\"e}nboer, Bart and Gulcehre, Caglar '
        "and Bahdanau, Dzmitry and Bougares, Fethi and Schwenk, Holger and Bengio, Yoshua",
        "2014",
        "Learning phrase representations using {RNN} encoder-decoder for statistical "
        "machine translation",
        {
            "booktitle": "Proceedings of the 2014 Conference on Empirical Methods in Natural "
            "Language Processing (EMNLP)",
            "pages": "1724--1734",
            "doi": "10.3115/v1/D14-1179",
        },
        "Cho et al.",
        "EMNLP 2014, pp. 1724-1734",
    ),
    "chung2014": (
        "misc",
        "Chung, Junyoung and Gulcehre, Caglar and Cho, KyungHyun and Bengio, Yoshua",
        "2014",
        "Empirical evaluation of gated recurrent neural networks on sequence modeling",
        {
            "howpublished": "NIPS 2014 Workshop on Deep Learning",
            "eprint": "1412.3555",
            "archiveprefix": "arXiv",
        },
        "Chung, Gulcehre, Cho & Bengio",
        "NIPS 2014 Deep Learning Workshop, arXiv:1412.3555",
    ),
    "zhou2016": (
        "article",
        "Zhou, Guo-Bing and Wu, Jianxin and Zhang, Chen-Lin and Zhou, Zhi-Hua",
        "2016",
        "Minimal gated unit for recurrent neural networks",
        {
            "journal": "International Journal of Automation and Computing",
            "volume": "13",
            "number": "3",
            "pages": "226--234",
            "doi": "10.1007/s11633-016-1006-2",
        },
        "Zhou, Wu, Zhang & Zhou",
        "International Journal of Automation and Computing 13(3):226-234",
    ),
    "li2018indrnn": (
        "inproceedings",
        "Li, Shuai and Li, Wanqing and Cook, Chris and Zhu, Ce and Gao, Yanbo",
        "2018",
        "Independently recurrent neural network ({IndRNN}): building a longer and deeper {RNN}",
        {
            "booktitle": "Proceedings of the IEEE Conference on Computer Vision and Pattern "
            "Recognition (CVPR)",
            "pages": "5457--5466",
            "doi": "10.1109/CVPR.2018.00572",
        },
        "Li, Li, Cook, Zhu & Gao",
        "CVPR 2018, pp. 5457-5466",
    ),
    "chen2018minimalrnn": (
        "inproceedings",
        "Chen, Minmin and Pennington, Jeffrey and Schoenholz, Samuel S.",
        "2018",
        "Dynamical isometry and a mean field theory of {RNNs}: gating enables signal "
        "propagation in recurrent neural networks",
        {
            "booktitle": "Proceedings of the 35th International Conference on Machine Learning "
            "(ICML)",
            "series": "PMLR",
            "volume": "80",
            "pages": "873--882",
        },
        "Chen, Pennington & Schoenholz",
        "ICML 2018, PMLR 80:873-882",
    ),
    "westhuizen2018janet": (
        "misc",
        "van der Westhuizen, Jos and Lasenby, Joan",
        "2018",
        "The unreasonable effectiveness of the forget gate",
        {"eprint": "1804.04849", "archiveprefix": "arXiv"},
        "van der Westhuizen & Lasenby",
        "arXiv:1804.04849",
    ),
    "gu2020urlstm": (
        "inproceedings",
        "Gu, Albert and Gulcehre, Caglar and Paine, Tom Le and Hoffman, Matt and Pascanu, Razvan",
        "2020",
        "Improving the gating mechanism of recurrent neural networks",
        {
            "booktitle": "Proceedings of the 37th International Conference on Machine Learning "
            "(ICML)",
            "series": "PMLR",
            "volume": "119",
            "eprint": "1910.09890",
            "archiveprefix": "arXiv",
        },
        "Gu, Gulcehre, Paine, Hoffman & Pascanu",
        "ICML 2020, PMLR 119, arXiv:1910.09890",
    ),
    "feng2024minrnn": (
        "misc",
        "Feng, Leo and Tung, Frederick and Ahmed, Mohamed Osama and Bengio, Yoshua and "
        "Hajimirsadeghi, Hossein",
        "2024",
        "Were {RNNs} all we needed?",
        {"eprint": "2410.01201", "archiveprefix": "arXiv"},
        "Feng, Tung, Ahmed, Bengio & Hajimirsadeghi",
        "arXiv:2410.01201",
    ),
    "rusch2021cornn": (
        "inproceedings",
        "Rusch, T. Konstantin and Mishra, Siddhartha",
        "2021",
        "Coupled oscillatory recurrent neural network ({coRNN}): an accurate and (gradient) "
        "stable architecture for learning long time dependencies",
        {
            "booktitle": "International Conference on Learning Representations (ICLR)",
            "eprint": "2010.00951",
            "archiveprefix": "arXiv",
        },
        "Rusch & Mishra",
        "ICLR 2021, arXiv:2010.00951",
    ),
    "rusch2022lem": (
        "inproceedings",
        "Rusch, T. Konstantin and Mishra, Siddhartha and Erichson, N. Benjamin and Mahoney, "
        "Michael W.",
        "2022",
        "Long expressive memory for sequence modeling",
        {
            "booktitle": "International Conference on Learning Representations (ICLR)",
            "eprint": "2110.04744",
            "archiveprefix": "arXiv",
        },
        "Rusch, Mishra, Erichson & Mahoney",
        "ICLR 2022, arXiv:2110.04744",
    ),
    "beck2024xlstm": (
        "inproceedings",
        'Beck, Maximilian and P{\\"o}ppel, Korbinian and Spanring, Markus and Auer, Andreas and '
        'Prudnikova, Oleksandra and Kopp, Michael and Klambauer, G{\\"u}nter and Brandstetter, '
        "Johannes and Hochreiter, Sepp",
        "2024",
        "{xLSTM}: extended long short-term memory",
        {
            "booktitle": "Advances in Neural Information Processing Systems (NeurIPS)",
            "volume": "37",
            "eprint": "2405.04517",
            "archiveprefix": "arXiv",
        },
        "Beck et al.",
        "NeurIPS 2024, arXiv:2405.04517",
    ),
    "de2024griffin": (
        "misc",
        "De, Soham and Smith, Samuel L. and Fernando, Anushan and Botev, Aleksandar and "
        "Cristian-Muraru, George and Gu, Albert and Haroun, Ruba and Berrada, Leonard and "
        "Chen, Yutian and Srinivasan, Srivatsan and others",
        "2024",
        "Griffin: mixing gated linear recurrences with local attention for efficient language "
        "models",
        {"eprint": "2402.19427", "archiveprefix": "arXiv"},
        "De, Smith, Fernando et al.",
        "arXiv:2402.19427",
    ),
    "chang2019antisymmetric": (
        "inproceedings",
        "Chang, Bo and Chen, Minmin and Haber, Eldad and Chi, Ed H.",
        "2019",
        "{AntisymmetricRNN}: a dynamical system view on recurrent neural networks",
        {"booktitle": "International Conference on Learning Representations (ICLR)"},
        "Chang et al.",
        "ICLR 2019, arXiv:1902.09689",
    ),
    "erichson2021lipschitz": (
        "inproceedings",
        "Erichson, N. Benjamin and Azencot, Omri and Queiruga, Alejandro and Hodgkinson, Liam "
        "and Mahoney, Michael W.",
        "2021",
        "Lipschitz recurrent neural networks",
        {"booktitle": "International Conference on Learning Representations (ICLR)"},
        "Erichson et al.",
        "ICLR 2021, arXiv:2006.12070",
    ),
    "gu2023mamba": (
        "misc",
        "Gu, Albert and Dao, Tri",
        "2023",
        "Mamba: linear-time sequence modeling with selective state spaces",
        {"eprint": "2312.00752", "archiveprefix": "arXiv"},
        "Gu & Dao",
        "arXiv:2312.00752",
    ),
    # ---- methods and theory -------------------------------------------------------------------
    "pascanu2013": (
        "inproceedings",
        "Pascanu, Razvan and Mikolov, Tomas and Bengio, Yoshua",
        "2013",
        "On the difficulty of training recurrent neural networks",
        {
            "booktitle": "Proceedings of the 30th International Conference on Machine Learning "
            "(ICML)",
            "series": "PMLR",
            "volume": "28",
            "number": "3",
            "pages": "1310--1318",
        },
        "Pascanu, Mikolov & Bengio",
        "ICML 2013, PMLR 28(3):1310-1318",
    ),
    "bengio1994": (
        "article",
        "Bengio, Yoshua and Simard, Patrice and Frasconi, Paolo",
        "1994",
        "Learning long-term dependencies with gradient descent is difficult",
        {
            "journal": "IEEE Transactions on Neural Networks",
            "volume": "5",
            "number": "2",
            "pages": "157--166",
            "doi": "10.1109/72.279181",
        },
        "Bengio, Simard & Frasconi",
        "IEEE Transactions on Neural Networks 5(2):157-166",
    ),
    "poole2016": (
        "inproceedings",
        "Poole, Ben and Lahiri, Subhaneil and Raghu, Maithra and "
        "Sohl-Dickstein, Jascha and Ganguli, Surya",
        "2016",
        "Exponential expressivity in deep neural networks through transient chaos",
        {
            "booktitle": "Advances in Neural Information Processing Systems 29 (NIPS 2016)",
            "pages": "3360--3368",
        },
        "Poole, Lahiri, Raghu, Sohl-Dickstein & Ganguli",
        "NIPS 2016, pp. 3360-3368",
    ),
    "efron1993": (
        "book",
        "Efron, Bradley and Tibshirani, Robert J.",
        "1993",
        "An Introduction to the Bootstrap",
        {"publisher": "Chapman \\& Hall/CRC", "address": "New York"},
        "Efron & Tibshirani",
        "Chapman & Hall/CRC, New York",
    ),
    "davison1997": (
        "book",
        "Davison, Anthony C. and Hinkley, David V.",
        "1997",
        "Bootstrap Methods and their Application",
        {"publisher": "Cambridge University Press", "address": "Cambridge"},
        "Davison & Hinkley",
        "Cambridge University Press, Cambridge",
    ),
    "schoenholz2017": (
        "inproceedings",
        "Schoenholz, Samuel S. and Gilmer, Justin and Ganguli, Surya and Sohl-Dickstein, Jascha",
        "2017",
        "Deep information propagation",
        {"booktitle": "International Conference on Learning Representations (ICLR)"},
        "Schoenholz, Gilmer, Ganguli & Sohl-Dickstein",
        "ICLR 2017",
    ),
    "pennington2017": (
        "inproceedings",
        "Pennington, Jeffrey and Schoenholz, Samuel S. and Ganguli, Surya",
        "2017",
        "Resurrecting the sigmoid in deep learning through dynamical isometry: theory and practice",
        {
            "booktitle": "Advances in Neural Information Processing Systems 30 (NIPS 2017)",
            "pages": "4785--4795",
        },
        "Pennington, Schoenholz & Ganguli",
        "NIPS 2017, pp. 4785-4795",
    ),
    "gilboa2019": (
        "misc",
        "Gilboa, Dar and Chang, Bo and Chen, Minmin and Yang, Greg and Schoenholz, "
        "Samuel S. and Chi, Ed H. and Pennington, Jeffrey",
        "2019",
        "Dynamical isometry and a mean field theory of {LSTMs} and {GRUs}",
        {"eprint": "1901.08987", "archiveprefix": "arXiv", "primaryclass": "cs.LG"},
        "Gilboa, Chang, Chen, Yang, Schoenholz, Chi & Pennington",
        "arXiv:1901.08987",
    ),
    "glorot2010": (
        "inproceedings",
        "Glorot, Xavier and Bengio, Yoshua",
        "2010",
        "Understanding the difficulty of training deep feedforward neural networks",
        {
            "booktitle": "Proceedings of the Thirteenth International Conference on Artificial "
            "Intelligence and Statistics (AISTATS)",
            "series": "PMLR",
            "volume": "9",
            "pages": "249--256",
        },
        "Glorot & Bengio",
        "AISTATS 2010, PMLR 9:249-256",
    ),
    "saxe2014": (
        "inproceedings",
        "Saxe, Andrew M. and McClelland, James L. and Ganguli, Surya",
        "2014",
        "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks",
        {
            "booktitle": "International Conference on Learning Representations (ICLR)",
            "eprint": "1312.6120",
            "archiveprefix": "arXiv",
        },
        "Saxe, McClelland & Ganguli",
        "ICLR 2014, arXiv:1312.6120",
    ),
    "mezzadri2007": (
        "article",
        "Mezzadri, Francesco",
        "2007",
        "How to generate random matrices from the classical compact groups",
        {
            "journal": "Notices of the American Mathematical Society",
            "volume": "54",
            "number": "5",
            "pages": "592--604",
        },
        "Mezzadri",
        "Notices of the AMS 54(5):592-604",
    ),
    "le2015irnn": (
        "misc",
        "Le, Quoc V. and Jaitly, Navdeep and Hinton, Geoffrey E.",
        "2015",
        "A simple way to initialize recurrent networks of rectified linear units",
        {"eprint": "1504.00941", "archiveprefix": "arXiv", "primaryclass": "cs.NE"},
        "Le, Jaitly & Hinton",
        "arXiv:1504.00941",
    ),
    "jozefowicz2015": (
        "inproceedings",
        "Jozefowicz, Rafal and Zaremba, Wojciech and Sutskever, Ilya",
        "2015",
        "An empirical exploration of recurrent network architectures",
        {
            "booktitle": "Proceedings of the 32nd International Conference on Machine Learning "
            "(ICML)",
            "series": "PMLR",
            "volume": "37",
            "pages": "2342--2350",
        },
        "Jozefowicz, Zaremba & Sutskever",
        "ICML 2015, PMLR 37:2342-2350",
    ),
    "tallec2018chrono": (
        "inproceedings",
        "Tallec, Corentin and Ollivier, Yann",
        "2018",
        "Can recurrent neural networks warp time?",
        {"booktitle": "International Conference on Learning Representations (ICLR)"},
        "Tallec & Ollivier",
        "ICLR 2018",
    ),
    "paszke2019": (
        "inproceedings",
        "Paszke, Adam and Gross, Sam and Massa, Francisco and Lerer, Adam and "
        "Bradbury, James and Chanan, Gregory and Killeen, Trevor and Lin, Zeming and "
        "Gimelshein, Natalia and Antiga, Luca and others",
        "2019",
        "{PyTorch}: an imperative style, high-performance deep learning library",
        {
            "booktitle": "Advances in Neural Information Processing Systems 32 (NeurIPS 2019)",
            "pages": "8024--8035",
        },
        "Paszke et al.",
        "NeurIPS 2019, pp. 8024-8035",
    ),
    "benettin1980": (
        "article",
        "Benettin, Giancarlo and Galgani, Luigi and Giorgilli, Antonio and Strelcyn, Jean-Marie",
        "1980",
        "Lyapunov characteristic exponents for smooth dynamical systems and for Hamiltonian "
        "systems; a method for computing all of them. {Part} 1: theory",
        {
            "journal": "Meccanica",
            "volume": "15",
            "number": "1",
            "pages": "9--20",
            "doi": "10.1007/BF02128236",
        },
        "Benettin, Galgani, Giorgilli & Strelcyn",
        "Meccanica 15(1):9-20",
    ),
    "stewart1997graded": (
        "article",
        "Stewart, G. W.",
        "1997",
        "On graded {QR} decompositions of products of matrices",
        {
            "journal": "Electronic Transactions on Numerical Analysis",
            "volume": "3",
            "pages": "39--49",
        },
        "Stewart",
        "ETNA 3:39-49",
    ),
    "demmel1992jacobi": (
        "article",
        "Demmel, James and Veseli{\\'c}, Kre{\\v{s}}imir",
        "1992",
        "Jacobi's method is more accurate than {QR}",
        {
            "journal": "SIAM Journal on Matrix Analysis and Applications",
            "volume": "13",
            "number": "4",
            "pages": "1204--1245",
            "doi": "10.1137/0613074",
        },
        "Demmel & Veselic",
        "SIAM J. Matrix Anal. Appl. 13(4):1204-1245",
    ),
    "kaplan1979": (
        "incollection",
        "Kaplan, James L. and Yorke, James A.",
        "1979",
        "Chaotic behavior of multidimensional difference equations",
        {
            "booktitle": "Functional Differential Equations and Approximation of Fixed Points",
            "series": "Lecture Notes in Mathematics",
            "volume": "730",
            "pages": "204--227",
            "publisher": "Springer",
            "doi": "10.1007/BFb0064319",
        },
        "Kaplan & Yorke",
        "Lecture Notes in Mathematics 730:204-227",
    ),
    "eckmann1985": (
        "article",
        "Eckmann, Jean-Pierre and Ruelle, David",
        "1985",
        "Ergodic theory of chaos and strange attractors",
        {
            "journal": "Reviews of Modern Physics",
            "volume": "57",
            "number": "3",
            "pages": "617--656",
            "doi": "10.1103/RevModPhys.57.617",
        },
        "Eckmann & Ruelle",
        "Rev. Mod. Phys. 57(3):617-656",
    ),
    "flyvbjerg1989": (
        "article",
        "Flyvbjerg, H. and Petersen, H. G.",
        "1989",
        "Error estimates on averages of correlated data",
        {
            "journal": "The Journal of Chemical Physics",
            "volume": "91",
            "number": "1",
            "pages": "461--466",
            "doi": "10.1063/1.457480",
        },
        "Flyvbjerg & Petersen",
        "J. Chem. Phys. 91(1):461-466",
    ),
    "srivastava2015highway": (
        "misc",
        'Srivastava, Rupesh K. and Greff, Klaus and Schmidhuber, J{\\"u}rgen',
        "2015",
        "Highway networks",
        {
            "howpublished": "ICML 2015 Deep Learning Workshop",
            "eprint": "1505.00387",
            "archiveprefix": "arXiv",
        },
        "Srivastava, Greff & Schmidhuber",
        "ICML 2015 Deep Learning Workshop, arXiv:1505.00387",
    ),
    "okabeito2008": (
        "misc",
        "Okabe, Masataka and Ito, Kei",
        "2008",
        "Color universal design ({CUD}): how to make figures and presentations that are "
        "friendly to colorblind people",
        {"howpublished": "J*Fly, \\url{https://jfly.uni-koeln.de/color/}"},
        "Okabe & Ito",
        "J*Fly, https://jfly.uni-koeln.de/color/",
    ),
    "trefethen2014": (
        "article",
        "Trefethen, Lloyd N. and Weideman, J. A. C.",
        "2014",
        "The exponentially convergent trapezoidal rule",
        {
            "journal": "SIAM Review",
            "volume": "56",
            "number": "3",
            "pages": "385--458",
            "doi": "10.1137/130932132",
        },
        "Trefethen & Weideman",
        "SIAM Review 56(3):385-458",
    ),
}


def _bibtex(key: str, ref: _Ref) -> str:
    kind, authors, year, title, fields, _, _ = ref
    lines = [f"@{kind}{{{key},", f"  author = {{{authors}}},", f"  title = {{{title}}},"]
    lines += [f"  {name} = {{{value}}}," for name, value in fields.items()]
    lines.append(f"  year = {{{year}}}")
    lines.append("}")
    return "\n".join(lines)


#: Citation key -> BibTeX entry, for every reference used in gradflow.
BIBTEX: dict[str, str] = {key: _bibtex(key, ref) for key, ref in _REFS.items()}


def _lookup(key: str) -> _Ref:
    try:
        return _REFS[key]
    except (KeyError, TypeError):
        hint = did_you_mean(str(key), list(_REFS))
        raise UsageError(f"unknown citation key {key!r}{hint}") from None


def _plain(title: str) -> str:
    return title.replace("{", "").replace("}", "")


def text(key: str | Iterable[str]) -> str:
    """One line ``Authors (year), Title, Venue``; for several keys, one line each.

    Raises:
        UsageError: an unknown key (with a did-you-mean suggestion).
    """
    if not isinstance(key, str):
        return "\n".join(text(k) for k in dict.fromkeys(key))
    _, _, year, title, _, short, venue = _lookup(key)
    title = _plain(title)
    return f"{short} ({year}), {title[0].upper()}{title[1:]}, {venue}"


def cite(keys: Iterable[str]) -> str:
    """BibTeX entries for ``keys`` (each once, in the order given), separated by blank lines.

    Raises:
        UsageError: an unknown key (with a did-you-mean suggestion).
    """
    seen: list[str] = []
    for key in keys:
        _lookup(key)
        if key not in seen:
            seen.append(key)
    return "\n\n".join(BIBTEX[k] for k in seen) + ("\n" if seen else "")
