"""What the demo's reps and buyers say: hand-written lines of B2B sales calls, combined per call by
`devstack.demo.transcripts`. Pure data.

Every line is written to be read the way docs/conversations.md reads a transcript: a line meant as a
Voss tactic is one (a label opens with "It sounds like", a mirror repeats the last words of the
buyer's statement it answers, a summary is at least 20 words), and no other line is one by accident
(no "sounds like" or "that's right" elsewhere, no short rep line that could pass for a mirror).
tests/demo/test_transcripts.py checks both over whole generated calls.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pain:
    """Something the buyer struggles with, and the rep's ways of answering it."""

    said: str  # the buyer's statement; a mirror repeats its last words
    mirror: str
    label: str
    more: str  # what the buyer adds once mirrored or labelled
    gist: str  # the pain as a summary puts it


PAINS: tuple[Pain, ...] = (
    Pain(
        "Honestly, the Monday forecast call has turned into a guessing game.",
        "A guessing game?",
        "It sounds like nobody really trusts the number that goes upstairs.",
        "Last quarter we called it within ten percent, and that was mostly luck.",
        "nobody trusts the forecast",
    ),
    Pain(
        "Our new hires take almost six months before they close a deal without help.",
        "Without help?",
        "It sounds like ramp time is eating a big part of every new rep's first year.",
        "By the time they are productive, some of them are already interviewing elsewhere.",
        "new hires take half a year to ramp",
    ),
    Pain(
        "Our managers spend their whole week in deal reviews instead of coaching.",
        "Instead of coaching?",
        "It seems like coaching keeps getting pushed to the bottom of the list.",
        "They want to coach, but the pipeline meetings eat every free hour they have.",
        "coaching gets squeezed out by deal reviews",
    ),
    Pain(
        "Every rep runs discovery their own way, so the pipeline data is all over the place.",
        "All over the place?",
        "It sounds like you can't compare one rep's pipeline with another's.",
        "Two reps can call the same deal a commit and mean completely different things.",
        "every rep runs discovery differently",
    ),
    Pain(
        "We lost two big renewals last quarter and nobody saw it coming.",
        "Nobody saw it coming?",
        "It sounds like those two losses still sting.",
        "The accounts looked healthy in the CRM right up until the cancellation notice.",
        "renewals slip away without warning",
    ),
    Pain(
        "The board wants a forecast we can defend, and right now we can't.",
        "A forecast you can defend?",
        "It sounds like the pressure from the board lands squarely on your desk.",
        "Our CFO asks me every month where the number comes from.",
        "the board wants a forecast you can defend",
    ),
    Pain(
        "Our reps spend more time updating the CRM than talking to buyers.",
        "Than talking to buyers?",
        "It sounds like the admin work is crowding out actual selling.",
        "I counted once, and it was almost two hours a day of data entry.",
        "reps spend more time in the CRM than with buyers",
    ),
    Pain(
        "Half the team ignored the last tool we rolled out.",
        "The last tool?",
        "It sounds like you're worried this would end up as shelfware too.",
        "We paid for a full year and maybe five people ever logged in.",
        "the last tool was ignored",
    ),
    Pain(
        "Procurement adds about six weeks to anything over fifty thousand.",
        "Six weeks?",
        "It sounds like the buying process matters as much as the product here.",
        "Legal and security both have to sign off before anyone talks about price.",
        "procurement adds six weeks to every purchase",
    ),
    Pain(
        "Our top performers do things that were never written down.",
        "Never written down?",
        "It sounds like a lot of what works lives in a few people's heads.",
        "When one of them leaves, all of that walks out the door with them.",
        "what the best reps do was never written down",
    ),
    Pain(
        "We've hired twelve reps this year and three already left.",
        "Three already left?",
        "It seems like turnover is undoing a lot of the hiring work.",
        "Every departure costs us a territory and about four months of pipeline.",
        "new reps keep leaving",
    ),
    Pain(
        "Our managers can't listen to more than a couple of calls a week.",
        "A couple of calls?",
        "It sounds like your managers are coaching half blind.",
        "So the feedback is based on whatever the rep remembers from the call.",
        "managers hear only a couple of calls a week",
    ),
    Pain(
        "Pricing came in way above what we budgeted.",
        "Above what you budgeted?",
        "It sounds like the number caught you off guard.",
        "We planned for something closer to half of that for this year.",
        "the price is above budget",
    ),
    Pain(
        "My VP thinks we already have enough tools.",
        "Enough tools?",
        "It sounds like you'd need a strong case to get this past your VP.",
        "She signed off on four new tools last year and regrets at least two.",
        "your VP thinks the team has enough tools",
    ),
    Pain(
        "The integration with our CRM broke twice last year.",
        "Broke twice?",
        "It sounds like you've been burned by integrations before.",
        "Both times we lost a week of activity data and had to rebuild reports by hand.",
        "past integrations broke",
    ),
    Pain(
        "Security review alone took our team three months last time.",
        "Three months?",
        "It seems like security is where deals like this go to stall.",
        "They sent a questionnaire with two hundred questions and then went quiet.",
        "security review takes months",
    ),
    Pain(
        "Nobody looks at the dashboards we already pay for.",
        "Already pay for?",
        "It sounds like the data is there but nobody acts on it.",
        "The reports get built, shared once, and then forgotten.",
        "nobody uses the dashboards you pay for",
    ),
    Pain(
        "Our reps start pitching way too early on first calls.",
        "On first calls?",
        "It sounds like discovery turns into a product tour too soon.",
        "By minute five they are sharing slides the buyer never asked for.",
        "reps pitch too early on first calls",
    ),
    Pain(
        "We miss the number whenever one big deal slips.",
        "One big deal?",
        "It sounds like the whole quarter rides on a handful of deals.",
        "Three deals made up almost half of last quarter's bookings.",
        "one slipped deal sinks the quarter",
    ),
    Pain(
        "The spreadsheet we use for territory planning is held together with tape.",
        "Held together with tape?",
        "It sounds like planning takes far more effort than it should.",
        "Only one analyst understands the formulas, and she is going on leave.",
        "territory planning lives in a fragile spreadsheet",
    ),
    Pain(
        "We tried something like this two years ago and it didn't stick.",
        "Didn't stick?",
        "It sounds like you don't want to put the team through another rollout that fizzles.",
        "The reps went back to their old habits within a month.",
        "the last rollout did not stick",
    ),
    Pain(
        "I'm not sure my reps would actually use it.",
        "Actually use it?",
        "It sounds like adoption is the real risk for you.",
        "If it adds even one more click to their day, they will route around it.",
        "adoption is the real risk",
    ),
    Pain(
        "Honestly, our reorg is taking up all of the oxygen.",
        "All of the oxygen?",
        "It sounds like the reorg leaves little room for anything new.",
        "Half the managers have new teams and are still learning names.",
        "the reorg leaves no room for anything new",
    ),
    Pain(
        "Our managers coach on gut feeling more than on data.",
        "On gut feeling?",
        "It sounds like your managers would coach differently if they could see more.",
        "Each of them has a favourite theory about why deals are lost.",
        "managers coach on gut feeling",
    ),
)

# What the buyer says about the team before naming a pain.
CONTEXT: tuple[str, ...] = (
    "We grew from ten reps to about forty in the last two years, mostly through referrals.",
    "Most of our deals are mid-market software companies, with a sales cycle of about three months.",
    "We split the team into inbound and outbound last spring, and it has been a bumpy ride since.",
    "I took over the sales team in January after our previous VP moved on.",
    "We sell mostly to operations leaders, and they tend to bring finance in quite late.",
    "The team is spread across Berlin and Austin, so the managers rarely sit with their reps.",
    "Our board approved an aggressive plan for this year, which means a lot more hiring.",
    "Right now every manager runs the team with their own spreadsheet and their own habits.",
    "We moved upmarket last year, so the deals are bigger but they take a lot longer.",
    "I spend most of my week on the forecast and on hiring, and very little with customers.",
    "We brought in a sales enablement lead six months ago, but she is a team of one.",
    "Our win rates were fine until the market tightened, and now every deal is a fight.",
)

# Questions that open with how or what and ask the buyer to think: calibrated questions.
CALIBRATED: tuple[str, ...] = (
    "What's prompting you to look at this now?",
    "How are you handling forecasting today?",
    "What happens when a rep misses the number?",
    "How does your team decide which deals to push?",
    "What does a good quarter look like for you?",
    "What would have to change for this to be worth solving?",
    "How do new reps learn what good selling is on your team?",
    "What's the biggest thing slowing your team down?",
    "How is that affecting the rest of the team?",
    "What have you tried so far to fix it?",
    "How would your VP measure success here?",
    "What makes this hard to fix internally?",
    "What's getting in the way of coaching every week?",
    "How do your managers prepare for one-on-ones?",
    "What worries you most about the rest of the year?",
    "How does a deal usually get lost on your team?",
)

# A calibrated question that digs into what the buyer just said, and the buyer's answer.
FOLLOW_UPS: tuple[tuple[str, str], ...] = (
    (
        "How is that affecting the rest of the team?",
        "The managers feel it most, they end up doing the reps' homework.",
    ),
    (
        "What happens if nothing changes this year?",
        "Then we hire more people to cover the gap, and the board won't love it.",
    ),
    ("What has the team done about it so far?", "Mostly more meetings, which is part of the problem."),
    (
        "What would fixing it mean for you personally?",
        "Honestly, a calmer end of quarter and fewer late nights.",
    ),
    ("How does your leadership see the problem?", "They see the symptoms in the forecast, not the cause."),
)

# A calibrated question in the middle of a pitch, and the buyer's answer.
PITCH_CHECKS: tuple[tuple[str, str], ...] = (
    (
        "How would that land with your managers?",
        "They'd like it, as long as it saves them time instead of adding reviews.",
    ),
    ("What part of that matters most for your team?", "The weekly list for the managers, without a doubt."),
    (
        "How does that compare with what you do today?",
        "Today it's all manual, so almost anything would be an improvement.",
    ),
)

# Questions answered yes or no, or with a number: questions, but not calibrated ones.
CLOSED: tuple[tuple[str, str], ...] = (
    ("Are you on Salesforce or HubSpot today?", "Salesforce, for about three years now."),
    ("Do your managers listen to recorded calls?", "When they find the time, which is rarely."),
    ("Is the team mostly remote these days?", "About half of them, across two offices."),
    ("Do you have someone in revenue operations?", "One person, and she is stretched thin."),
    ("Are you recording calls at all today?", "Only with the basic recorder in our phone system."),
    ("Does your VP sit in on the forecast call?", "Every week, and she asks hard questions."),
    ("How many reps are on the team right now?", "Thirty-two, plus four managers."),
    ("How long does a new hire take to ramp?", "Five or six months on a good day."),
    ("How often do managers run one-on-ones?", "Every two weeks, when nothing gets cancelled."),
    ("How many open deals does each rep carry?", "Around twenty at any one time."),
)

# The rep's acknowledgement before the next question, when a pain is neither labelled nor mirrored.
ACKNOWLEDGE: tuple[str, ...] = (
    "Okay, that's helpful to know.",
    "Understood, thanks for explaining that.",
    "Thanks, that gives me a clearer picture.",
    "Okay, I appreciate you walking me through it.",
)

# What the buyer says first once labelled: agreement in other words than "that's right".
LABEL_REPLIES: tuple[str, ...] = (
    "Yes, that's exactly it.",
    "Honestly, yes.",
    "Pretty much, yes.",
    "That's a fair way to put it.",
    "I hadn't put it that way, but yes.",
)

# What the buyer says while the rep talks: back-channels (SPEC 5.7), never a switch of speaker.
BACKCHANNELS: tuple[str, ...] = ("Mhm.", "Okay.", "Right.", "Yeah.", "Sure.", "Got it.", "I see.", "Mm-hmm.")

# The rep's product, one sentence at a time: a pitch is a run of these.
PITCH: tuple[str, ...] = (
    "We record every call, score it against your own playbook, and show each manager where to coach.",
    "Most teams start with discovery, because that's where deals are won or lost.",
    "Managers get a short list every Monday of the calls that are worth their time.",
    "Reps see their own talk time and questions right after each call, so nobody waits for a review.",
    "We plug into Salesforce and HubSpot, so nothing changes in how your reps log their work.",
    "One customer of ours, a team about your size, cut ramp time from six months to under four.",
    "The forecast rolls up from the deals themselves, so the board number matches the pipeline.",
    "Everything is hosted in the EU, and our SOC 2 report is ready to share with your security team.",
    "Pricing is per seat, and most teams start with a pilot for one region.",
    "The setup usually takes two weeks, and our team does most of the heavy lifting.",
    "You can build a scorecard for each stage, so every manager coaches to the same standard.",
    "Every call gets a short summary with next steps, which goes straight into the opportunity.",
    "We also flag deals where the buyer has gone quiet, so nobody is surprised at quarter end.",
    "Our customers usually see managers coaching twice as many calls within the first month.",
    "Reps get a reminder when a follow-up is overdue, before the deal goes cold.",
    "There's a library of the best calls, so new hires learn from real conversations from day one.",
    "The manager dashboard ranks reps on the skills that actually move deals forward.",
    "We built the product with sales leaders, so the reports answer the questions they get asked.",
    "Our mobile app lets reps review a call on the train home instead of booking time for it.",
    "Each rep gets three coaching points a week, not a wall of numbers nobody reads.",
    "The platform learns which questions your best reps ask and suggests them to everyone else.",
    "Enablement can turn any great call into a training module in a couple of clicks.",
    "Your data stays yours, and you decide how long we keep every recording.",
    "Admins can switch recording off per region, which keeps the works councils happy.",
    "Most of our customers expand to the whole sales floor within the first year.",
    "We run a quarterly review with your leadership to show what changed and what did not.",
    "The integration takes one afternoon of your admin's time, and we test it with you.",
    "Reps can flag a moment in a call and ask their manager for feedback on just that part.",
    "Onboarding comes with a dedicated success manager for the first ninety days.",
    "There's an open API, so your data team can pull everything into the warehouse.",
)

# The buyer's questions after a pitch, each with the rep's answer.
BUYER_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("How does the pricing work?", "It's per seat, billed yearly, and most teams begin with one region."),
    (
        "Does it work with Salesforce?",
        "Yes, it syncs both ways, so reps keep working in Salesforce as they do now.",
    ),
    ("How long does the setup take?", "About two weeks end to end, and our team does most of the work."),
    (
        "Who else uses this in our space?",
        "Several software and logistics teams about your size use it every day.",
    ),
    (
        "What happens to the call recordings?",
        "They stay in your region, and you decide how long we keep them.",
    ),
    (
        "Can managers use it on their phones?",
        "Yes, the mobile app covers reviews, comments and the weekly list.",
    ),
)

# What the buyer thinks aloud after hearing about the product.
REACTIONS: tuple[str, ...] = (
    "Interesting, we tried to build something like that in-house and gave up after one quarter.",
    "Okay, the part about the managers' weekly list is what would matter most to us.",
    "Our reps would like that, as long as it doesn't mean more data entry for them.",
    "Finance will want to see numbers from a team like ours before anyone signs anything.",
    "That could help, but our managers are already drowning in reports they never open.",
    "I like the idea, but I have been burned by rollouts that looked great in the demo.",
    "The EU hosting matters a lot for us, our works council will ask about it first thing.",
    "If that really saves the managers a few hours a week, the case writes itself.",
)

OPENINGS: tuple[str, ...] = (
    "Hi {buyer}, this is {rep} from Demo Sales.",
    "Hey {buyer}, {rep} here with Demo Sales.",
    "Good morning {buyer}, my name is {rep} and I work with Demo Sales.",
)
MEETING_OPENINGS: tuple[str, ...] = (
    "Thanks for making the time today, {buyer}.",
    "Hi {buyer}, good to see you again, and thanks for joining.",
)
REASONS: tuple[str, ...] = (
    "I'm calling because you downloaded our guide on sales coaching last week.",
    "I'm reaching out because a few teams in your industry have been asking us about coaching.",
    "I saw your post about hiring more account executives this year.",
)
MEETING_REASONS: tuple[str, ...] = (
    "Before I show anything, I'd love to hear how things work on your side today.",
    "I'd like to spend most of our time on your team, and only then on the product.",
)
BUYER_GREETINGS: tuple[str, ...] = (
    "Sure, I have a few minutes before my next meeting.",
    "Go ahead, I have about ten minutes.",
    "Okay, you caught me between two calls.",
    "Happy to, let me give you some background first.",
)
NO_ORIENTED_OPENINGS: tuple[str, ...] = (
    "Is now a bad time for a quick question?",
    "Did I catch you at a bad time?",
)
NO_ORIENTED_CLOSES: tuple[str, ...] = (
    "Would it be a bad idea to bring your operations lead into our next conversation?",
    "Would you be against a short pilot with one of your teams?",
)
AUDITS: tuple[str, ...] = (
    "You're probably thinking this is just another tool your reps will ignore.",
    "I know you weren't expecting my call.",
    "This might sound a little blunt, but most teams we meet are not ready for us yet.",
)
AUDIT_REPLIES: tuple[str, ...] = (
    "Honestly, the thought crossed my mind.",
    "Well, we do get a lot of these calls.",
    "Fair enough, go on.",
)
# What opens a later pitch, after the buyer's question or objection.
BRIDGES: tuple[str, ...] = (
    "That's exactly the kind of thing we help teams with.",
    "We hear that a lot, and here is how we handle it.",
    "Good point, and it ties into what I was saying earlier.",
)
# What the buyer says when the rep is about to wrap up (a summary opens the rep's turn).
WRAP_UPS: tuple[str, ...] = (
    "I think that covers most of our situation.",
    "That's the short version of where we are.",
    "So that's roughly the picture on our side.",
)
PITCH_LEADS: tuple[str, ...] = (
    "Let me tell you a little about how we work.",
    "Here is the short version of what we do.",
    "Let me share how other teams use us.",
)
MONOLOGUE_LEADS: tuple[str, ...] = (
    "Let me just walk you through the whole platform first, it will all make sense in a minute.",
    "Bear with me, there's a lot to cover, so I'll go through everything in one go.",
    "I'll give you the full picture first and then we can talk about your team.",
)
CHECK_INS: tuple[tuple[str, str], ...] = (
    ("Does that make sense so far?", "Mostly, yes, though I'm not sure how it fits our process."),
    ("Is that the kind of thing you're after?", "Maybe, it's hard to say without seeing it."),
    ("Are you with me so far?", "I think so, it's a lot to take in at once."),
)
SUMMARY_OPENINGS: tuple[str, ...] = (
    "So what I'm hearing is that",
    "If I understand you correctly,",
    "In other words,",
)
SUMMARY_ENDINGS: tuple[str, ...] = (
    "and you need a fix the team will actually use before the next quarter starts.",
    "and whatever you choose has to make the managers' week easier, not harder.",
    "and you need to show the board progress without adding work for the reps.",
)
THATS_RIGHT: tuple[str, ...] = (
    "That's right.",
    "Yes, that's exactly right.",
    "That's right, that's the whole story.",
)
AFTER_THATS_RIGHT: tuple[str, ...] = (
    "If you can help with even half of that, I'm interested.",
    "Nobody has put it together like that for me before.",
    "That's why I agreed to this call in the first place.",
)
YOURE_RIGHT: tuple[str, ...] = (
    "You're right, adoption is the part I'd have to sell internally.",
    "You're right, that's been the pattern for a while.",
)
CLOSES: tuple[tuple[str, str], ...] = (
    (
        "Would Thursday at ten work for a deeper session with your team?",
        "Thursday works, send me the invite.",
    ),
    (
        "Can I send over a short recap and two slots for next week?",
        "Sure, send the recap and I'll pick a slot.",
    ),
    (
        "Shall we set up a walkthrough with your managers next week?",
        "Let's do that, my assistant can find the slot.",
    ),
)
GOODBYES: tuple[tuple[str, str], ...] = (
    ("Great, I'll send it right after this call. Thanks, {buyer}.", "Thanks, talk soon."),
    ("Perfect, you'll have everything within the hour. Have a good day.", "You too, bye."),
)
BUYER_NAMES: tuple[str, ...] = (
    "Alex", "Sam", "Jordan", "Priya", "Marco", "Lena", "Tom", "Aisha", "Kenji", "Sofia", "Daniel",
    "Nora", "Felix", "Maria", "Oscar", "Hannah", "Raj", "Chloe", "Peter", "Ingrid",
)  # fmt: skip
