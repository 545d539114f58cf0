"""Social-media idioms the resolver knows about, as data (not per-tag answers).

* FILLER: engagement and photo-meta tags that say nothing about what an image shows
  (#instagood, #photooftheday, #tbt, #nofilter ...). Several are also ordinary English
  nouns in WordNet (photo, pic, filter), which is exactly why they are listed: on a post
  they describe the post, not its content.
* STOPWORDS: pronouns and function words that WordNet happens to list as nouns through
  abbreviations (me = Maine, it = information technology, in = indium ...).
* PREFIXES / SUFFIXES: the affixes users wrap a subject in (#instadog, #dogsofinstagram,
  #catstagram, #doglover, #catoftheday, #pizzatime, #beachlife, #foodporn). The resolver
  strips one and resolves what is left, so they apply to every noun alike.
* JOINERS: short function words allowed inside segmented compounds (#macandcheese).
"""

from __future__ import annotations

FILLER: frozenset[str] = frozenset(
    """
    instagood photooftheday picoftheday pictureoftheday photoofday potd bestoftheday
    instapic instaphoto instadaily instalike instamood instalove instacool instafollow
    photo photos pic pics picture pictures photography photographer image images shot
    tbt throwback throwbackthursday flashbackfriday fbf wcw mcm ootd ootn
    like likes like4like likeforlike l4l lfl follow followme follow4follow followforfollow
    f4f tagsforlikes tflers likes4likes comment comments share tag tags hashtag hashtags
    nofilter filter nofilterneeded repost regram reels reel explore explorepage viral
    trending fyp foryou foryoupage selfie selfies instagram insta ig igers igdaily
    webstagram picstitch vsco vscocam snapseed iphoneography shotoniphone
    mood vibes goodvibes goodvibesonly
    """.split()
)

STOPWORDS: frozenset[str] = frozenset(
    """
    a an the and or but of in on at to for from with by as is am are was be been it its
    i me my mine we us our you your he him his she her they them their this that these
    those there here so no not yes do does did go oh ok okay lol omg
    """.split()
)

# Longest first, so "stagram" is tried before "gram".
SUFFIXES: tuple[str, ...] = tuple(sorted(
    """
    ofinstagram ofig oftheday oftheweek stagram gram lover lovers love addict addicts
    time life lifestyle porn gasm daily everyday vibes goals world club fam mood
    photography photo pics pic selfie
    """.split(), key=len, reverse=True))

PREFIXES: tuple[str, ...] = tuple(sorted(
    """
    insta ilove my
    """.split(), key=len, reverse=True))

JOINERS: frozenset[str] = frozenset("and n of with in on".split())
