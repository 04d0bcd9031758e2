namespace ContinualMoE.Data.Text;

/// <summary>Size of the generated text benchmark (<see cref="GeneratedTextBenchmark"/>).</summary>
public sealed record GeneratedTextOptions
{
    public int Seed { get; init; } = 1;
    public int Tasks { get; init; } = 5;
    /// <summary>Training examples per label of a classification task (a generation task gets twice this many).</summary>
    public int TrainPerClass { get; init; } = 40;
    public int TestPerClass { get; init; } = 20;
    /// <summary>Every n-th task (the 3rd, 6th, ...) is a generation task; 0: classification only.</summary>
    public int GenerationEvery { get; init; } = 3;
}

/// <summary>
/// A stream of text tasks that needs no files (docs/text-tasks.md), deterministic from the seed. The shared structure:
/// one lexicon of common English words, one sentence form (five words), one instruction form, one set of filler words
/// that every task's sentences use, and one pool of topic labels, so later tasks reuse labels of earlier ones (the same
/// class). The task-specific structure: a classification task gives each of its 2-3 labels three keywords of its own,
/// and a sentence holds three of its label's keywords and two fillers; a generation task maps four of its own source
/// words to target words, a sentence holds its source word three times and two fillers, and the answer is the
/// source's target (exact match). The instruction names the task.
/// Two properties keep the stream learnable (docs/text-tasks.md, "Why it was changed"):
/// <list type="bullet">
/// <item>Consistent across tasks: each task draws its keywords, sources and targets from lexicon words that no earlier
/// task used, so a word never decides one label in one task and another label (or is a filler) in another. Joint
/// training on all tasks then learns one mapping; with words reused, the same word meant different labels in different
/// tasks and even joint training stayed at one answer for every input. A stream longer than the lexicon allows starts
/// drawing from the whole lexicon again.</item>
/// <item>Evidence in most of the sentence: three of five words carry the answer, so the answer position sees it in an
/// average over the sentence. With one keyword among four fillers, the small model first had to learn where to attend,
/// and most tasks never left the plateau where it gives one answer for every input.</item>
/// </list>
/// Every lexicon word and label is a single token of the default language model's 1,024-entry vocabulary (and of
/// GPT-2's and LLaMA's), so a task is a mapping between tokens.
/// </summary>
public static class GeneratedTextBenchmark
{
    public const string DatasetName = "generated-text";

    /// <summary>Keywords, source/target words and fillers: common words, each one token with a leading space.</summary>
    private static readonly string[] Words =
    [
        "ask", "away", "back", "call", "come", "day", "end", "feel", "find", "friend", "give", "good", "great", "hand",
        "hard", "know", "last", "light", "like", "little", "long", "look", "make", "man", "mind", "need", "new", "old",
        "part", "people", "person", "problem", "program", "put", "read", "real", "right", "run", "say", "see", "system",
        "take", "tell", "thing", "think", "try", "want", "way", "well", "year", "computer", "always", "better", "best",
        "first", "never", "nothing", "something", "things", "two", "one", "men", "many", "much", "more", "said", "use",
        "going", "own", "other", "ever",
    ];
    /// <summary>Topic labels, disjoint from <see cref="Words"/>.</summary>
    private static readonly string[] LabelPool = ["life", "work", "love", "time", "world", "law"];
    private const int SentenceWords = 5;
    /// <summary>Words of a sentence that carry its answer (the rest are fillers).</summary>
    private const int EvidenceWords = 3;
    private const int KeywordsPerLabel = 3;
    private const int GenerationPairs = 4;
    /// <summary>Filler words shared by every task.</summary>
    private const int Fillers = 8;

    public static IReadOnlyList<TextTaskData> Create(GeneratedTextOptions? options = null)
    {
        options ??= new GeneratedTextOptions();
        if (options.Tasks < 1 || options.TrainPerClass < 1 || options.TestPerClass < 1 || options.GenerationEvery < 0)
            throw new ContinualMoEException("generated text benchmark: tasks and examples per class must be at least 1 and generation_every at least 0");
        var random = new Random(Seeds.Combine(options.Seed, 7));
        var lexicon = Words.ToArray();
        Seeds.Shuffle(random, lexicon);
        var filler = lexicon.Take(Fillers).ToArray();
        var keys = new KeyWords(lexicon.Skip(Fillers).ToArray());
        var tasks = new List<TextTaskData>();
        for (var t = 0; t < options.Tasks; t++)
        {
            var taskRandom = new Random(Seeds.Combine(options.Seed, t, 11));
            var generation = options.GenerationEvery > 0 && (t + 1) % options.GenerationEvery == 0;
            tasks.Add(generation ? GenerationTask(t, taskRandom, keys, filler, options) : ClassificationTask(t, taskRandom, keys, filler, options));
        }
        return tasks;
    }

    private static TextTaskData ClassificationTask(int t, Random random, KeyWords keys, string[] filler, GeneratedTextOptions options)
    {
        var labelCount = 2 + random.Next(2);
        var labels = Draw(random, LabelPool, labelCount);
        var words = keys.Take(random, KeywordsPerLabel * labelCount);
        var keywords = labels.Select((_, l) => words.Skip(KeywordsPerLabel * l).Take(KeywordsPerLabel).ToArray()).ToArray();
        var name = $"t{t + 1}-topics";
        var instruction = $"Task {t + 1}: name the topic. Options: {string.Join(", ", labels)}.";
        List<TextExample> Examples(int perClass)
        {
            var examples = new List<TextExample>();
            for (var i = 0; i < perClass; i++)
                for (var l = 0; l < labels.Length; l++)
                    examples.Add(new TextExample(instruction, Sentence(random, filler, keywords[l]), labels[l]));
            return examples;
        }
        return new TextTaskData(name, Examples(options.TrainPerClass), Examples(options.TestPerClass), labels);
    }

    private static TextTaskData GenerationTask(int t, Random random, KeyWords keys, string[] filler, GeneratedTextOptions options)
    {
        var words = keys.Take(random, 2 * GenerationPairs);
        var sources = words.Take(GenerationPairs).ToArray();
        var targets = words.Skip(GenerationPairs).ToArray();
        var name = $"t{t + 1}-translate";
        var instruction = $"Task {t + 1}: translate the key word.";
        List<TextExample> Examples(int count)
        {
            var examples = new List<TextExample>();
            for (var i = 0; i < count; i++)
            {
                var k = random.Next(sources.Length);
                examples.Add(new TextExample(instruction, Sentence(random, filler, [sources[k]]), targets[k]));
            }
            return examples;
        }
        return new TextTaskData(name, Examples(2 * options.TrainPerClass), Examples(2 * options.TestPerClass), []);
    }

    /// <summary><see cref="EvidenceWords"/> words drawn from <paramref name="evidence"/> and the rest fillers, in random
    /// order, after "Text:" so that every word follows a space (a line's first word would be other tokens than the same
    /// word after a space).</summary>
    private static string Sentence(Random random, string[] filler, string[] evidence)
    {
        var words = new string[SentenceWords];
        for (var i = 0; i < SentenceWords; i++)
            words[i] = i < EvidenceWords ? evidence[random.Next(evidence.Length)] : filler[random.Next(filler.Length)];
        Seeds.Shuffle(random, words);
        return "Text: " + string.Join(' ', words);
    }

    private static string[] Draw(Random random, string[] pool, int count)
    {
        var copy = pool.ToArray();
        Seeds.Shuffle(random, copy);
        return copy.Take(count).ToArray();
    }

    /// <summary>Hands out lexicon words that no earlier task used; when too few are left, starts again from all of them.</summary>
    private sealed class KeyWords(string[] all)
    {
        private readonly List<string> unused = [.. all];

        public string[] Take(Random random, int count)
        {
            if (count > all.Length) throw new ContinualMoEException($"generated text benchmark: a task needs {count} key words, the lexicon has {all.Length}");
            if (unused.Count < count) unused.AddRange(all.Except(unused));
            var drawn = Draw(random, [.. unused], count);
            unused.RemoveAll(drawn.Contains);
            return drawn;
        }
    }
}
