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
/// one lexicon of common English words, one sentence form (five lexicon words) and one instruction form; labels come
/// from one pool of topic words, so later tasks reuse labels of earlier ones (the same class). The task-specific
/// structure: a classification task gives each of its 2-3 labels its own keywords, and a sentence holds exactly one
/// keyword among filler words; a generation task maps six of its own source words to target words, and the answer to
/// a sentence holding a source word is that word's target (scored by exact match). A model must learn each task's
/// keywords or mapping; the instruction names the task, so the prompt also tells the tasks apart.
/// Every lexicon word and label is a single token of the default language model's 1,024-entry vocabulary (and of
/// GPT-2's and LLaMA's), so a task is a mapping between tokens: a small model learns it within a few hundred steps,
/// where words made of shared sub-word pieces left a 552k-parameter model at chance (docs/text-tasks.md).
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
        "take", "tell", "thing", "think", "try", "want", "way", "well", "year", "computer",
    ];
    /// <summary>Topic labels, disjoint from <see cref="Words"/>.</summary>
    private static readonly string[] LabelPool = ["life", "work", "love", "time", "world", "law"];
    private const int SentenceWords = 5;

    public static IReadOnlyList<TextTaskData> Create(GeneratedTextOptions? options = null)
    {
        options ??= new GeneratedTextOptions();
        if (options.Tasks < 1 || options.TrainPerClass < 1 || options.TestPerClass < 1 || options.GenerationEvery < 0)
            throw new ContinualMoEException("generated text benchmark: tasks and examples per class must be at least 1 and generation_every at least 0");
        var random = new Random(Seeds.Combine(options.Seed, 7));
        var lexicon = Words.ToArray();
        Seeds.Shuffle(random, lexicon);
        var tasks = new List<TextTaskData>();
        for (var t = 0; t < options.Tasks; t++)
        {
            var taskRandom = new Random(Seeds.Combine(options.Seed, t, 11));
            var generation = options.GenerationEvery > 0 && (t + 1) % options.GenerationEvery == 0;
            tasks.Add(generation ? GenerationTask(t, taskRandom, lexicon, options) : ClassificationTask(t, taskRandom, lexicon, options));
        }
        return tasks;
    }

    private static TextTaskData ClassificationTask(int t, Random random, string[] lexicon, GeneratedTextOptions options)
    {
        var labelCount = 2 + random.Next(2);
        var labels = Draw(random, LabelPool, labelCount);
        var words = Draw(random, lexicon, 3 * labelCount + 12);
        var keywords = labels.Select((_, l) => words.Skip(3 * l).Take(3).ToArray()).ToArray();
        var filler = words.Skip(3 * labelCount).ToArray();
        var name = $"t{t + 1}-topics";
        var instruction = $"Task {t + 1}: name the topic. Options: {string.Join(", ", labels)}.";
        List<TextExample> Examples(int perClass)
        {
            var examples = new List<TextExample>();
            for (var i = 0; i < perClass; i++)
                for (var l = 0; l < labels.Length; l++)
                    examples.Add(new TextExample(instruction, Sentence(random, filler, keywords[l][random.Next(3)]), labels[l]));
            return examples;
        }
        return new TextTaskData(name, Examples(options.TrainPerClass), Examples(options.TestPerClass), labels);
    }

    private static TextTaskData GenerationTask(int t, Random random, string[] lexicon, GeneratedTextOptions options)
    {
        var words = Draw(random, lexicon, 6 + 6 + 12);
        var sources = words.Take(6).ToArray();
        var targets = words.Skip(6).Take(6).ToArray();
        var filler = words.Skip(12).ToArray();
        var name = $"t{t + 1}-translate";
        var instruction = $"Task {t + 1}: translate the key word.";
        List<TextExample> Examples(int count)
        {
            var examples = new List<TextExample>();
            for (var i = 0; i < count; i++)
            {
                var k = random.Next(sources.Length);
                examples.Add(new TextExample(instruction, Sentence(random, filler, sources[k]), targets[k]));
            }
            return examples;
        }
        return new TextTaskData(name, Examples(2 * options.TrainPerClass), Examples(2 * options.TestPerClass), []);
    }

    /// <summary>Four filler words with the key word at a random place, after "Text:" so that every word follows a space
    /// (a line's first word would be other tokens than the same word after a space).</summary>
    private static string Sentence(Random random, string[] filler, string key)
    {
        var words = new string[SentenceWords];
        var at = random.Next(SentenceWords);
        for (var i = 0; i < SentenceWords; i++) words[i] = i == at ? key : filler[random.Next(filler.Length)];
        return "Text: " + string.Join(' ', words);
    }

    private static string[] Draw(Random random, string[] pool, int count)
    {
        var copy = pool.ToArray();
        Seeds.Shuffle(random, copy);
        return copy.Take(count).ToArray();
    }
}
