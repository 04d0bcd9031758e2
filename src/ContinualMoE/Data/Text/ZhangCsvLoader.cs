namespace ContinualMoE.Data.Text;

/// <summary>
/// The five text-classification datasets in their original CSV files (Zhang, Zhao and LeCun 2015, "Character-level
/// convolutional networks for text classification"): a folder per dataset (ag_news_csv, amazon_review_full_csv,
/// dbpedia_csv, yahoo_answers_csv, yelp_review_full_csv) with train.csv and test.csv, one row per example: the 1-based
/// class index, then the text columns (AG News, DBpedia, Amazon: title, body; Yelp: body; Yahoo: question title,
/// question content, best answer). Labels are the label texts of O-LoRA's CL_Benchmark labels.json (whose order is the
/// class index order of these files), so a model trained on either form is scored on the other. The input follows the
/// O-LoRA files ("Title: …\nText: …\n", verified for AG News, DBpedia and Amazon); for Yelp (no title) and Yahoo (three
/// text columns) the project joins the text columns with a space after "Text: " (O-LoRA's converted files for these
/// two are not in its repository).
/// </summary>
public static class ZhangCsvLoader
{
    /// <summary>A dataset: its benchmark name, its CSV folder, its task family and its label texts by class index.</summary>
    public sealed record CsvDataset(string Name, string Folder, string Family, IReadOnlyList<string> Labels);

    private static readonly string[] Ratings = ["very negative", "negative", "neutral", "positive", "very positive"];

    public static IReadOnlyList<CsvDataset> Datasets { get; } =
    [
        new("agnews", "ag_news_csv", "TC", ["World", "Sports", "Business", "Science or Technology"]),
        new("dbpedia", "dbpedia_csv", "TC", ["Company", "Educational Institution", "Artist", "Athlete", "Office Holder", "Mean of Transportation",
            "Building", "Natural Place", "Village", "Animal", "Plant", "Album", "Film", "Written Work"]),
        new("yahoo", "yahoo_answers_csv", "TC", ["Society & Culture", "Science & Mathematics", "Health", "Education & Reference", "Computers & Internet",
            "Sports", "Business & Finance", "Entertainment & Music", "Family & Relationships", "Politics & Government"]),
        new("amazon", "amazon_review_full_csv", "SC", Ratings),
        new("yelp", "yelp_review_full_csv", "SC", Ratings),
    ];

    /// <summary>Training examples per class when <see cref="TextTaskOptions.TrainPerClass"/> is not set: the 1000 of
    /// Progressive Prompts (README, <c>--select_k_per_class 1000</c>), which O-LoRA's published train.json files follow
    /// (e.g. AG News: 4000 examples over 4 classes).</summary>
    public const int DefaultTrainPerClass = 1000;

    /// <summary>Test examples per dataset when <see cref="TextTaskOptions.TestLimit"/> is not set: the 7600 of each test.json
    /// in O-LoRA's CL_Benchmark (all of AG News' test set; a sample of the larger ones).</summary>
    public const int DefaultTestLimit = 7600;

    /// <summary>Loads the tasks of an order (order1..order3) or a comma list of dataset names from a folder holding the
    /// CSV dataset folders.</summary>
    public static IReadOnlyList<TextTaskData> Load(string root, string orderOrList, TextTaskOptions? options = null)
    {
        options ??= new TextTaskOptions();
        TextFiles.RequireFolder(root, "CSV datasets");
        var names = StandardClBenchmark.Resolve(orderOrList);
        var datasets = names.Select(Find).ToList();
        var instructions = StandardClBenchmark.LoadInstructions(root, options.InstructionFile);
        return datasets.Select(d => LoadDataset(root, d, instructions, options)).ToList();
    }

    private static CsvDataset Find(string name) =>
        Datasets.FirstOrDefault(d => d.Name.Equals(name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ContinualMoEException(
            $"dataset '{name}' has no original CSV files (only {string.Join(", ", Datasets.Select(d => d.Name))}); load it from O-LoRA's CL_Benchmark JSON (long-sequence:<root>)");

    private static TextTaskData LoadDataset(string root, CsvDataset dataset, IReadOnlyDictionary<string, string> instructions, TextTaskOptions options)
    {
        var folder = Path.Combine(root, dataset.Folder);
        if (!Directory.Exists(folder)) throw ContinualMoEException.ForFile(folder, $"CSV folder of '{dataset.Name}' not found (expected {dataset.Folder}/ with train.csv and test.csv)");
        if (!instructions.TryGetValue(dataset.Family, out var instruction))
            throw new ContinualMoEException($"the instruction file has no zero-shot instruction for the task family '{dataset.Family}' (dataset '{dataset.Name}')");
        var prefix = instruction + "Option: " + string.Join(", ", dataset.Labels) + " \n";
        // The caps are applied while streaming (a reservoir per class, or one for the total), then the total on what was kept.
        var train = ReadCsv(Path.Combine(folder, "train.csv"), dataset, prefix, new TextSampling.Reservoir(options.TrainPerClass ?? DefaultTrainPerClass, options.TrainLimit, options.Seed, dataset.Name + "/train"));
        var test = ReadCsv(Path.Combine(folder, "test.csv"), dataset, prefix, new TextSampling.Reservoir(options.TestPerClass, options.TestLimit ?? DefaultTestLimit, options.Seed, dataset.Name + "/test"));
        return new TextTaskData(dataset.Name,
            TextSampling.Cap(train, null, options.TrainLimit, options.Seed, dataset.Name + "/train"),
            TextSampling.Cap(test, null, options.TestLimit ?? DefaultTestLimit, options.Seed, dataset.Name + "/test"),
            dataset.Labels);
    }

    private static List<TextExample> ReadCsv(string path, CsvDataset dataset, string instruction, TextSampling.Reservoir examples)
    {
        var textColumns = dataset.Name switch { "yelp" => 1, "yahoo" => 3, _ => 2 };
        var any = false;
        foreach (var (fields, line) in TextFiles.ReadCsv(path))
        {
            if (fields.Count != 1 + textColumns)
                throw ContinualMoEException.ForFile(path, $"line {line}: expected {1 + textColumns} columns (class index, {TextColumnsOf(dataset.Name)}), found {fields.Count}");
            if (!int.TryParse(fields[0].Trim(), out var index) || index < 1 || index > dataset.Labels.Count)
                throw ContinualMoEException.ForFile(path, $"line {line}: unknown label '{fields[0]}' (class indices of {dataset.Name} are 1..{dataset.Labels.Count})");
            var input = textColumns == 1 ? $"Text: {fields[1]}\n"
                : textColumns == 2 ? $"Title: {fields[1]}\nText: {fields[2]}\n"
                : $"Title: {fields[1]}\nText: {fields[2]} {fields[3]}\n";
            examples.Add(new TextExample(instruction, input, dataset.Labels[index - 1]));
            any = true;
        }
        if (!any) throw ContinualMoEException.ForFile(path, "no examples");
        return examples.Result();
    }

    private static string TextColumnsOf(string name) => name switch
    {
        "yelp" => "text",
        "yahoo" => "question title, question content, best answer",
        _ => "title, text",
    };
}
